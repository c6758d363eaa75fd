"""Training curves (``curves.png``): per model, its main loss on top and its other logged terms below.

The main loss is the one the board's Training table reports (:func:`zoo.store.runs.main_loss`), drawn alone so
that a GAN's oscillating terms do not hide it: training values faint, smoothed on top, the held-out
validations (``val.jsonl``) dashed with markers, what the recipe's untrained answer scores on the same crops
(``Recipe.reference_losses``) dotted grey, and the means over the first and the last tenth of the steps as
black bars, the two numbers the table compares.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import zoo
from zoo.boards.pictures import write_png
from zoo.store.cache import content_key
from zoo.store.files import atomic_write_bytes
from zoo.store.runs import VAL_LOG, VAL_REFERENCE, first_and_last_tenth, main_loss, read_log, reference_lines

LOG_KEYS = ("step", "stage", VAL_REFERENCE)


def _smooth(values: list[float], share: float = 0.02) -> list[float]:
    """Centred running mean over ``share`` of the run (shrinking at the ends): unlike an exponential average
    it neither lags nor drags the first, highest losses into later steps."""
    half = max(1, int(len(values) * share) // 2)
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + v)
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((sums[hi] - sums[lo]) / (hi - lo))
    return out


def _points(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def _draw_losses(ax, log: list[dict], held_out: list[dict], keys: list[str], colors: dict[str, str]) -> bool:
    """Each key's training line (raw faint, smoothed solid) and held-out line; False when nothing was drawn."""
    shown: list[float] = []  # the smoothed and held-out values set the range; raw batches may leave it
    for key in keys:
        xs, ys = _points(log, key)
        if xs:
            smooth = _smooth(ys)
            ax.plot(xs, ys, color=colors[key], alpha=0.12, linewidth=0.6)
            ax.plot(xs, smooth, color=colors[key], linewidth=1.6, label=key)
            shown += smooth
        xs, ys = _points(held_out, key)
        if xs:
            ax.plot(xs, ys, color=colors[key], linestyle="--", marker="o", markersize=3, linewidth=1.2,
                    label=f"{key} (held-out)")
            shown += ys
        xs, ys = _points(reference_lines(held_out), key)
        if xs:  # what an untrained answer (ab = 0, bicubic, ...) scores on the same held-out crops
            ax.plot(xs, ys, color="gray", linestyle=":", linewidth=1.4, label=f"{key}, untrained answer")
            shown += ys
    if not shown:
        return False
    low, high = min(shown), max(shown)
    if all(v > 0 for k in keys for v in _points(log + held_out, k)[1]):
        ax.set_yscale("log")
        ax.set_ylim(low / 1.25, high * 1.25)
    else:
        margin = 0.1 * (high - low) or 1.0
        ax.set_ylim(low - margin, high + margin)
    return True


def _tenth_bars(ax, rows: list[dict], key: str, steps: int, label: str, linestyle: str) -> None:
    tenths = first_and_last_tenth(rows, key, steps)
    if tenths is None:
        return
    first, last = tenths
    ax.hlines([first, last], [0, steps * 0.9], [steps * 0.1, steps], colors="black", linewidths=2.2,
              linestyles=linestyle, label=f"{label}: {first:.4g} -> {last:.4g} ({100 * (last / first - 1):+.1f} %)")


def _stage_lines(ax, log: list[dict]) -> None:
    starts = [r["step"] for prev, r in zip(log, log[1:]) if prev.get("stage") != r.get("stage")]
    for s in starts:
        ax.axvline(s, color="gray", linestyle="--", linewidth=0.8)


def loss_curves(path: Path, logs: dict[str, list[dict]], val: dict[str, list[dict]] | None = None) -> Path:
    """Draw ``logs`` (model label -> ``log.jsonl`` lines) and their held-out ``val`` lines into ``path``: a
    column per model (four a row), the main loss above and the other terms below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(logs)
    cols = min(4, n)
    bands = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * bands, cols, figsize=(4.2 * cols, 5.6 * bands), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2] * bands})
    for i, (name, log) in enumerate(logs.items()):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        held_out = (val or {}).get(name, [])
        # every loss any stage logged (a GAN stage logs other terms than its pre-training stage), in one colour each
        keys = [k for k in dict.fromkeys(k for r in log + held_out for k in r) if k not in LOG_KEYS]
        colors = {k: f"C{j}" for j, k in enumerate(keys)}
        steps = max((r["step"] for r in log), default=0)
        main = main_loss(log, steps) or (keys[0] if keys else None)
        if main is not None:
            _draw_losses(top, log, held_out, [main], colors)
            _tenth_bars(top, log, main, steps, "first / last 10 %", "solid")
            _tenth_bars(top, held_out, main, steps, "held-out", "dotted")
        top.set_title(f"{name}: {main}" if main else name, fontsize=11)
        others = [k for k in keys if k != main]
        if _draw_losses(bottom, log, held_out, others, colors):
            bottom.set_title(f"{name}: other terms", fontsize=9)
            bottom.legend(fontsize=7)
        else:
            bottom.text(0.5, 0.5, "no other loss terms", ha="center", va="center", fontsize=9, color="gray",
                        transform=bottom.transAxes)
            bottom.set_xticks([])
            bottom.set_yticks([])
        for ax in (top, bottom):
            _stage_lines(ax, log)
            ax.grid(True, alpha=0.3)
        bottom.set_xlabel("step")
        if main is not None:
            top.legend(fontsize=7)
    for i in range(n, bands * cols):
        axes[2 * (i // cols), i % cols].axis("off")
        axes[2 * (i // cols) + 1, i % cols].axis("off")
    fig.tight_layout()
    try:
        return write_png(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)


def run_curves(run_dir: Path, runs: list[tuple[str, str, Path]], cache: Path) -> None:
    """``curves.png`` of a bench run from its trainings ``(label, run key, run folder)``. The picture depends
    only on the finished runs (their keys), so it is drawn once and kept in the cache: a warm bench copies it
    (drawing takes seconds)."""
    drawn_by = ["curves", zoo.__version__, "main-loss-panels"]  # a new zoo may draw them differently
    cached = cache / "curves" / f"{content_key([drawn_by, [[label, key] for label, key, _ in runs]])}.png"
    if cached.is_file():
        atomic_write_bytes(run_dir / "curves.png", cached.read_bytes())
        return
    logs = {label: read_log(folder) for label, _, folder in runs}
    logs = {k: v for k, v in logs.items() if v}
    val = {label: read_log(folder, VAL_LOG) for label, _, folder in runs}
    if logs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_curves(run_dir / "curves.png", logs, {k: v for k, v in val.items() if v})
        atomic_write_bytes(cached, (run_dir / "curves.png").read_bytes())
