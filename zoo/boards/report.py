"""``report.html``: one self-contained page per run (or per set of merged runs) to look at the results.

The page works from ``file://`` with no network: its CSS and JavaScript are inlined from
``zoo/report_assets``, the results are a JSON block inside it, and the pictures are the run's own PNG files,
referenced by relative path and loaded lazily. It shows one sortable table per section (stage, test set,
scale) with each metric's direction and convention in the legend and on hover, baselines marked, the best
value per column highlighted, ``n/a`` and ``failed`` with their reason on hover; a filter; per-image values
of a row; a comparison view of the chosen rows' outputs beside the ground truth at native pixels, with
synchronised zoom and scrolling; the loss curves and the run's notes.
"""

from __future__ import annotations

import html
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.boards.leaderboard import RANK_FIRST, STAGE_TITLES, _weights_tag, render_markdown
from zoo.store.files import atomic_write_bytes
from zoo.store.runs import model_key, read_run, sample_dir

STAGE_ORDER = {"pipeline": 0, "colorizer": 1, "sr": 2}
TRUTH = {"pipeline": "_truth_hr", "sr": "_truth_hr", "colorizer": "_truth_lr"}


def _asset(name: str) -> str:
    return resources.files("zoo.boards").joinpath("report_assets", name).read_text(encoding="utf-8")


def _baselines(meta: dict[str, Any]) -> set[str]:
    """Models of the run with nothing to train: the reference rows of every table."""
    trained = {key.split("@")[0] for key in meta.get("models", {})}
    return {n for n in meta.get("colorizers", []) + meta.get("sr", []) if n not in trained}


def _pictures(run_dir: Path, base: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    folder = run_dir / sample_dir(row["stage"], row.get("order") or "", row.get("colorizer"), row.get("sr"),
                                  row["test_set"], row["scale"])
    outputs = sorted(p.name for p in (folder / "out").glob("*.png"))
    if not outputs:
        return None
    rel = lambda p: Path(os.path.relpath(p, base)).as_posix()  # noqa: E731
    return {"out": rel(folder / "out"), "truth": rel(folder.parent / TRUTH[row["stage"]]),
            "input": rel(folder.parent / "_input"), "images": outputs,
            "grid": rel(folder) if (folder / outputs[0]).is_file() else None}


def _finite(value):
    # JSON has no inf or NaN; the page shows such a value as n/a with its reason.
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def report_data(runs: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]], base: Path) -> dict[str, Any]:
    """The page's data: sections of rows, pictures relative to ``base`` (the page's folder), notes."""
    sections: dict[tuple, dict[str, Any]] = {}
    footnotes: list[str] = []
    params, train_s, baselines = {}, {}, set()
    for _, meta, _ in runs:
        params.update(meta.get("params", {}))
        train_s.update({k: v.get("train_seconds") for k, v in meta.get("models", {}).items()})
        baselines |= _baselines(meta)
    for run_dir, _, rows in runs:
        for r in rows:
            key = (r["stage"], r["test_set"], r["scale"])
            sec = sections.setdefault(key, {"stage": r["stage"], "title": STAGE_TITLES[r["stage"]],
                                            "test_set": r["test_set"], "scale": r["scale"], "n": 0,
                                            "columns": {}, "rows": {}})
            sec["n"] = max(sec["n"], r.get("n_images") or 0)
            ident = (r.get("colorizer"), r.get("sr"), r.get("order"))
            names = [n for n in ident[:2] if n]
            row = sec["rows"].setdefault(ident, {
                "colorizer": r.get("colorizer"), "sr": r.get("sr"), "order": r.get("order") or "",
                "label": " + ".join(names), "baseline": all(n in baselines for n in names),
                "baselines": [n for n in names if n in baselines],
                "params": sum(params.get(model_key(n, r["scale"])) or 0 for n in names),
                "train_s": sum(train_s.get(model_key(n, r["scale"])) or 0 for n in names),
                "ips": r.get("images_per_second"), "values": {}, "per_image": {},
                "pictures": _pictures(run_dir, base, r)})
            metric = r["metric"] + (f" ({_weights_tag(r.get('weights'))})" if r.get("weights") else "")
            if not r.get("failed"):
                sec["columns"].setdefault(metric, {
                    "key": metric, "label": r["metric"], "higher": bool(r["higher_is_better"]),
                    "ranked": bool(r.get("ranked", True)), "unit": r.get("unit") or "",
                    "convention": r.get("convention") or "", "weights": _weights_tag(r.get("weights"))})
            reason = None
            if r.get("value") is None:
                reason = f"failed: {r['failed']}" if r.get("failed") else (r.get("unavailable") or "not computed")
                if reason not in footnotes:
                    footnotes.append(reason)
            value = _finite(r.get("value"))
            if value is None and reason is None:
                reason = "not a finite number"
            row["values"][metric] = {"v": value, "std": _finite(r.get("std")) if r["metric"] == "kid" else None,
                                     "failed": bool(r.get("failed")), "why": reason}
            if r.get("per_image"):
                row["per_image"][metric] = {k: _finite(v) for k, v in r["per_image"].items()}
    ordered = sorted(sections.values(), key=lambda s: (STAGE_ORDER[s["stage"]], s["scale"]))
    for i, sec in enumerate(ordered):
        sec["id"] = f"s{i}"
        sec["columns"] = list(sec["columns"].values())
        sec["rows"] = list(sec["rows"].values())
    curves = [Path(os.path.relpath(d / "curves.png", base)).as_posix() for d, _, _ in runs
              if (d / "curves.png").is_file()]
    notes = render_markdown([(m, rs) for _, m, rs in runs]).split("## Notes", 1)[-1].strip().splitlines()
    names = sorted({m.get("suite", {}).get("name", "?") for _, m, _ in runs})
    return {"title": f"zoo leaderboard: {', '.join(names)}", "sections": ordered, "curves": curves,
            "rank_first": RANK_FIRST,  # the page ranks each stage as the markdown board does
            "notes": [n.rstrip() for n in notes if n.strip()]}


def render_html(runs: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]], base: Path) -> str:
    data = report_data(runs, base)
    # "</" inside the JSON would end the script element early.
    payload = json.dumps(data, sort_keys=True, allow_nan=False, default=str).replace("</", "<\\/")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(data['title'])}</title><style>{_asset('report.css')}</style></head>\n<body>\n"
        f"<script type=\"application/json\" id=\"zoo-data\">{payload}</script>\n"
        f"<script>{_asset('report.js')}</script>\n</body></html>\n"
    )


def write_report(run_dirs: list[Path], output: Path) -> Path:
    """Write the page for ``run_dirs`` to ``output`` (a file, or a folder that gets ``report.html``)."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        output = output / "report.html"
    runs = [(Path(d), *read_run(d)) for d in run_dirs]
    atomic_write_bytes(output, render_html(runs, output.parent.resolve() if output.parent.exists() else
                                           output.parent).encode())
    return output
