"""Leaderboards from results rows: markdown (pandas + tabulate), CSV, HTML.

A run directory holds ``results.jsonl`` (one row per model or combination, test set, scale and metric, with
all metadata), ``results.csv`` (the same, flat), ``run.json`` (suite, device, versions, models) and the
rendered ``leaderboard.md``. ``zoo leaderboard`` re-renders and merges runs from those files alone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.errors import ZooError
from zoo.store.runs import model_key, read_run

STAGE_TITLES = {
    "pipeline": "Pipeline: gray LR -> colorizer -> SR -> colour HR, compared with HR",
    "colorizer": "Colorization alone: gray LR -> colour LR, compared with the true colour LR",
    "sr": "Super-resolution alone: true colour LR -> HR, compared with HR",
}
SMALL_N_FOR_FID = 2048
# Each stage ranks by its field's headline metric when computed: colour for colorizers (pixel metrics favour
# ab = 0 there), PSNR for SR (colour metrics of an SR model given the true colours are near 100 %).
RANK_FIRST = {"colorizer": "auc_rebal", "sr": "psnr"}


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as ``results.csv`` holds them (what ``zoo.bench()`` returns): nested values as JSON text."""
    df = pd.DataFrame(rows)
    for col in ("weights", "skipped", "per_image"):
        if col in df:
            df[col] = df[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
    return df


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric.startswith("ssim"):
        return f"{value:.4f}"
    if metric in ("lpips", "kid"):
        return f"{value:.4f}"
    return f"{value:.2f}"


def _weights_tag(weights: dict[str, str] | None) -> str:
    return ",".join(f"{k}@{v}" for k, v in sorted((weights or {}).items()))


def _arrow(row: dict[str, Any]) -> str:
    """`` ↑`` / `` ↓`` for a ranked metric's direction, nothing for a descriptive one."""
    return "" if not row.get("ranked", True) else (" ↑" if row["higher_is_better"] else " ↓")


def _column(row: dict[str, Any]) -> str:
    unit = f" {row['unit']}" if row.get("unit") else ""
    arrow = _arrow(row)
    conv = row.get("convention") or ""
    return f"{row['metric']}{arrow}{unit}" + (f" [{conv}]" if conv else "")


def _column_key(row: dict[str, Any]) -> str:
    # Numbers from different weight files never share a column.
    tag = _weights_tag(row.get("weights"))
    return _column(row) if not tag else f"{_column(row)} ({tag})"


def headline_metric(rows: list[dict[str, Any]], stage: str) -> str | None:
    """The metric a stage's table ranks by, best first: the stage's RANK_FIRST when some row has a value for
    it, else the first ranked metric (in the rows' order) with a value."""
    ranked = list(dict.fromkeys(r["metric"] for r in rows if r.get("ranked", True) and r.get("value") is not None))
    preferred = RANK_FIRST.get(stage)
    return preferred if preferred in ranked else (ranked[0] if ranked else None)


def _table(rows: list[dict[str, Any]], stage: str, scale: int, models_meta: dict, footnotes: list[str]) -> str:
    ident = {"pipeline": ["colorizer", "sr"], "colorizer": ["colorizer"], "sr": ["sr"]}[stage]
    if stage == "pipeline" and len({r["order"] for r in rows}) > 1:
        ident = ident + ["order"]
    records: dict[tuple, dict[str, Any]] = {}
    columns: list[str] = []
    direction: dict[str, tuple[bool, bool]] = {}
    # A failed row has no convention of its own: it sits in the column its metric has in the other rows.
    column_of = {r["metric"]: _column_key(r) for r in rows if not r.get("failed")}
    described: dict[str, dict[str, Any]] = {}  # column -> a row with its metadata, for the legend
    for r in rows:
        k = tuple(r.get(i) for i in ident)
        rec = records.setdefault(k, {i: r.get(i) for i in ident})
        key = column_of.get(r["metric"], _column_key(r)) if r.get("failed") else _column_key(r)
        if not r.get("failed"):
            described[key] = r
        if key not in columns:
            columns.append(key)
        direction[key] = (bool(r["higher_is_better"]), bool(r.get("ranked", True)))
        if r.get("value") is None:
            if r.get("failed"):  # the whole row failed (zoo.harness.failures): one footnote for all its metrics
                note = f"failed: {r['failed']}"
                rec[f"{key}#failed"] = True
            else:
                note = f"{r['metric']}: {r.get('unavailable') or 'not computed'}"
            if note not in footnotes:  # one footnote per reason across all tables
                footnotes.append(note)
            rec[key] = None
            rec[f"{key}#note"] = footnotes.index(note) + 1
        else:
            rec[key] = float(r["value"])
            if r["metric"] == "kid" and r.get("std") is not None:
                rec[f"{key}#std"] = float(r["std"])
            if r.get("note"):  # e.g. capped PSNR: the number stands, with its footnote
                note = f"{r['metric']}: {r['note']}"
                if note not in footnotes:
                    footnotes.append(note)
                rec[f"{key}#note"] = footnotes.index(note) + 1
        rec["img/s"] = r.get("images_per_second")
    df = pd.DataFrame(list(records.values()))
    ranked = [c for c in columns if direction[c][1] and df[c].notna().any()]
    headline = headline_metric(rows, stage)
    primary = next((c for c in ranked if c.split()[0] == headline), None)
    if primary is not None:
        df = df.sort_values(primary, ascending=not direction[primary][0], na_position="last", kind="stable")
    out = pd.DataFrame({i: df[i].fillna("-") for i in ident})
    for c in columns:
        higher, ranked = direction[c]
        vals = df[c]
        best = None
        if ranked and vals.notna().any():
            best = vals.max() if higher else vals.min()
        cells = []
        for idx, v in vals.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                note = df.at[idx, f"{c}#note"] if f"{c}#note" in df else None
                # == (not is): a column of one row holds a numpy bool; NaN == True is False
                failed = f"{c}#failed" in df and bool(df.at[idx, f"{c}#failed"] == True)  # noqa: E712
                label = "failed" if failed else "n/a"
                cells.append(f"{label} [{int(note)}]" if note is not None and not pd.isna(note) else label)
                continue
            text = _fmt(v, c.split()[0])
            if f"{c}#std" in df and not pd.isna(df.at[idx, f"{c}#std"]):
                text += f" ± {_fmt(df.at[idx, f'{c}#std'], 'kid')}"
            text = f"**{text}**" if best is not None and v == best else text
            note = df.at[idx, f"{c}#note"] if f"{c}#note" in df else None
            cells.append(f"{text} [{int(note)}]" if note is not None and not pd.isna(note) else text)
        out[c] = cells
    extra = []
    for idx in df.index:
        names = [df.at[idx, i] for i in ident if i != "order"]
        params = sum((models_meta["params"].get(model_key(n, scale)) or 0) for n in names if n)
        train_s = sum((models_meta["train_seconds"].get(model_key(n, scale)) or 0) for n in names if n)
        extra.append((f"{params / 1e6:.2f}M" if params >= 1e5 else f"{params:,}", f"{train_s:.0f}",
                      f"{df.at[idx, 'img/s']:.1f}" if not pd.isna(df.at[idx, "img/s"]) else "-"))
    out["params"] = [e[0] for e in extra]
    out["train s"] = [e[1] for e in extra]
    out["images/s"] = [e[2] for e in extra]
    headers, legend = _short_headers(columns, described)
    out = out.rename(columns=headers)
    return out.to_markdown(index=False, disable_numparse=True) + "\n\n" + legend


def _short_headers(columns: list[str], described: dict[str, dict[str, Any]]) -> tuple[dict[str, str], str]:
    """Narrow headers (``psnr ↑``) and one legend line with each column's unit and convention."""
    headers, parts = {}, []
    for c in columns:
        r = described.get(c)
        if r is None:
            continue
        head = f"{r['metric']}{_arrow(r)}"
        n = sum(1 for h in headers.values() if h.split(" (")[0] == head)
        head = head if n == 0 else f"{head} ({n + 1})"  # same metric, other weight files
        headers[c] = head
        tag = _weights_tag(r.get("weights"))
        what = ", ".join(x for x in (r.get("unit"), r.get("convention"), tag and f"weights {tag}") if x)
        if what:
            parts.append(f"`{head}` {what}")
    return headers, ("Columns: " + "; ".join(parts) + ".") if parts else ""


def render_markdown(runs: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> str:
    """Render one or more runs (``(run.json, rows)``) as one markdown leaderboard."""
    if not runs:
        raise ZooError("no runs to render")
    names = sorted({m.get("suite", {}).get("name", "?") for m, _ in runs})
    lines = [f"# Leaderboard: {', '.join(names)}", ""]
    footnotes: list[str] = []
    all_rows: list[dict[str, Any]] = []
    models_meta: dict[str, dict[str, Any]] = {"params": {}, "train_seconds": {}}
    for meta, rows in runs:
        for key, value in meta.get("params", {}).items():
            models_meta["params"][key] = value
        for key, info in meta.get("models", {}).items():
            models_meta["train_seconds"][key] = info.get("train_seconds")
        all_rows.extend(rows)
    # A later run's row replaces an earlier identical one (same stage, models, data, scale, metric).
    dedup: dict[tuple, dict[str, Any]] = {}
    for r in all_rows:
        k = (r["stage"], r.get("order"), r.get("colorizer"), r.get("sr"), r["test_set"], r["scale"], r["metric"],
             r.get("convention"), _weights_tag(r.get("weights")))
        dedup[k] = r
    all_rows = list(dedup.values())
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in all_rows:
        groups.setdefault((r["stage"], r["test_set"], r["scale"]), []).append(r)
    stage_order = {"pipeline": 0, "colorizer": 1, "sr": 2}
    first_seen = {key: i for i, key in enumerate(groups)}  # test sets in the suite's order
    for (stage, test, scale) in sorted(groups, key=lambda g: (stage_order[g[0]], g[2], first_seen[g])):
        rows = groups[(stage, test, scale)]
        n = max(r.get("n_images", 0) for r in rows)
        lines += [f"## {STAGE_TITLES[stage]}", "", f"Test set `{test}`, x{scale}, n = {n} images.", ""]
        lines.append(_table(rows, stage, scale, models_meta, footnotes))
        lines.append("")
        if any(r["metric"] in ("fid", "kid") for r in rows) and n < SMALL_N_FOR_FID:
            lines += [f"FID on n = {n} < {SMALL_N_FOR_FID} images is strongly biased and unstable; rank by "
                      "KID (unbiased) on sets this small.", ""]
    lines += _training_table(runs)
    lines += ["## Notes", ""]
    for i, note in enumerate(footnotes, 1):
        lines.append(f"[{i}] {note}  ")
    lines.append("")
    for meta, _ in runs:
        s = meta.get("suite", {})
        lines.append(f"- run `{s.get('name')}` ({meta.get('created', '?')}): train `{_data_name(s.get('train'))}`, "
                     f"preset `{s.get('preset')}`, {s.get('steps')} steps (per model: "
                     f"{s.get('steps_per_model') or 'same'}), seed {s.get('seed')}, device {meta.get('device')}, "
                     f"{meta.get('train_jobs')} training jobs ({meta.get('trained_now')} run now), "
                     f"{meta.get('seconds')} s wall.")
        if s.get("overrides"):  # the recipe as it ran: a preset a suite changes is no longer that preset
            changed = "; ".join(f"{model}: " + ", ".join(f"{k}={v}" for k, v in sorted(o.items()))
                                for model, o in sorted(s["overrides"].items()))
            lines.append(f"- preset `{s.get('preset')}` as changed by the suite: {changed}")
        weights = sorted({f"{k}@{v}" for _, rows in runs for r in rows for k, v in (r.get("weights") or {}).items()})
        lines.append(f"- weights used by metrics: {', '.join(weights) if weights else 'none'}")
        if meta.get("downloaded"):
            fetched = ", ".join(f"{d['filename']}@{d['sha256'][:10]} (from {d['source']})" for d in meta["downloaded"])
            lines.append(f"- weight files downloaded during this run (sha256 verified): {fetched}")
        notes = sorted({f"{name.split('@')[0]}: {n}" for name, info in meta.get("models", {}).items()
                        for n in info.get("notes", [])})
        if notes:
            lines.append(f"- training notes: {'; '.join(notes)}")
        versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
        host = meta.get("host", {})
        lines.append(f"- versions: {versions}; host: Python {host.get('python')}, {host.get('machine')}, "
                     f"{host.get('threads')} torch threads")
    lines.append("- pixel metrics: outputs quantized to 8 bits; Y = BT.601 luma (16-235); shave = pixels "
                 "removed from each border (= scale for SR and pipelines); LR by MATLAB-compatible bicubic.")
    for meta, _ in runs:
        if meta.get("failures"):
            lines.append(f"- {len(meta['failures'])} job(s) failed in run `{meta.get('suite', {}).get('name')}` "
                         f"(tracebacks in its `errors.log`): " + "; ".join(meta["failures"]))
    marks = "`n/a [k]`, `failed [k]`" if any(m.get("failures") for m, _ in runs) else "`n/a [k]`"
    lines.append(f"- bold: best in column (direction from the arrow); {marks}: see note k.")
    return "\n".join(lines) + "\n"


def _training_table(runs) -> list[str]:
    """Each trained model's main loss over the first and the last tenth of its steps, in training and on the
    held-out validation images when the run had them: whether it learned, and whether that carried over."""
    rows, held_out_on = [], set()
    for meta, _ in runs:
        for name, info in meta.get("models", {}).items():
            loss = info.get("loss")
            if not loss:
                continue
            first, last = loss["train"]
            row = {"model": name.split("@")[0], "steps": info.get("steps"), "loss": f"`{loss['loss']}`",
                   "first 10 %": f"{first:.4g}", "last 10 %": f"{last:.4g}", "change": _change(first, last)}
            if loss.get("held_out"):
                h_first, h_last = loss["held_out"]
                held_out_on.add(str(info.get("validated_on") or "?"))
                row.update({"held-out first 10 %": f"{h_first:.4g}", "held-out last 10 %": f"{h_last:.4g}",
                            "held-out change": _change(h_first, h_last)})
                if loss.get("reference") and all(loss["reference"]):
                    r_first, r_last = loss["reference"]
                    row["held-out / untrained"] = f"{h_first / r_first:.3f} -> {h_last / r_last:.3f}"
            rows.append(row)
    if not rows:
        return []
    frame = pd.DataFrame(rows).fillna("")
    where = f" Held-out: fixed crops of `{'`, `'.join(sorted(held_out_on))}`, never trained on." if held_out_on else ""
    if "held-out / untrained" in frame:
        where += (" Held-out / untrained: the held-out loss as a share of what the recipe's untrained answer "
                  "(colorizers: ab = 0, or the colour prior for a classifier; SR: bicubic) scores on the same "
                  "crops, first tenth -> last; below 1 is learnt beyond that answer.")
    return ["## Training", "", "Each model's main training loss, mean over the first and the last tenth of its steps "
            f"(a fall is negative).{where} The curves: `curves.png` of the run, shown under Pictures on a board "
            "written with them.", "",
            frame.to_markdown(index=False), ""]


def _change(first: float, last: float) -> str:
    return f"{100 * (last / first - 1):+.1f} %" if first else "n/a"


def _data_name(spec: str | None) -> str | None:
    """A data folder as notes name it: relative to where the command runs (suites store absolute paths),
    so that a published leaderboard carries no path of the machine it was made on."""
    if not spec or spec.startswith("samples") or not os.path.isabs(spec):
        return spec
    try:
        return os.path.relpath(spec)
    except ValueError:  # another drive (Windows): the folder's name is all that is left to say
        return Path(spec).name


def render(run_dirs: list[Path], fmt: str = "md") -> str:
    runs = [read_run(d) for d in run_dirs]
    if fmt == "md":
        return render_markdown(runs)
    rows = [r for _, rs in runs for r in rs]
    if fmt == "csv":
        return results_frame(rows).to_csv(index=False)
    if fmt == "html":
        md = render_markdown(runs)
        try:
            import markdown  # optional

            return markdown.markdown(md, extensions=["tables"])
        except ImportError:
            return results_frame(rows).to_html(index=False)
    raise ZooError(f"unknown format '{fmt}' (md, csv, html)")
