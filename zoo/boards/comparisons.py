"""The pictures an evaluation job leaves for the report's comparison view.

An evaluation draws them once, into the cache beside its cached rows (keyed like them); each run that
shows the job gets a copy in its own folder (``samples/...``, :func:`zoo.store.runs.sample_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.boards.pictures import comparison_grid, save_png
from zoo.data.color import gray_to_rgb
from zoo.store.files import atomic_write_bytes
from zoo.store.runs import safe_name

SHARED = ("_truth_hr", "_truth_lr", "_input")  # the folders every row of a test set shares


def draw_samples(job, samples: list, pictures: Path) -> None:
    """What the report's comparison view shows: each output at native pixels (``out/``), its ground truth and
    gray input (shared by the rows of a test set: ``_truth_hr`` or ``_truth_lr``, ``_input``), and for a
    pipeline the comparison grid. ``job`` is a :class:`zoo.harness.jobs.EvalJob`."""
    pictures.mkdir(parents=True, exist_ok=True)
    truth = "_truth_lr" if job.stage == "colorizer" else "_truth_hr"
    for name, pred, triple, intermediate in samples:
        file = f"{safe_name(name)}.png"
        save_png(pictures / "out" / file, pred)
        save_png(pictures / truth / file, triple.lr if job.stage == "colorizer" else triple.hr)
        save_png(pictures / "_input" / file, gray_to_rgb(triple.lr_l))
        comparison_grid(pictures / file, **grid_panels(job, triple, intermediate, pred))


def grid_panels(job, triple, intermediate, pred) -> dict[str, Any]:
    """What each stage's picture shows: its input, what the stage adds, and the ground truth."""
    gray = gray_to_rgb(triple.lr_l)
    if job.stage == "sr":
        return {"title": f"{job.sr.name}: colour LR -> HR", "truth": triple.hr,
                "panels": [("colour LR input", triple.lr), (f"output ({job.sr.name})", pred),
                           ("ground truth", triple.hr)]}
    if job.stage == "colorizer":
        return {"title": f"{job.colorizer.name}: gray LR -> colour LR", "truth": triple.lr,
                "panels": [("gray LR input", gray), (f"output ({job.colorizer.name})", pred),
                           ("ground truth (colour LR)", triple.lr)]}
    col, sr = job.colorizer.name, job.sr.name
    first = job.order == "sr-first"
    middle = (f"upscaled gray ({sr})" if first else f"colorized LR ({col})", intermediate if intermediate is not None
              else gray)
    return {"title": f"{sr} -> {col} (SR first)" if first else f"{col} -> {sr}", "truth": triple.hr,
            "panels": [("gray LR input", gray), middle, (f"output ({col} + {sr})", pred), ("ground truth", triple.hr)]}


def copy_pictures(src: Path, dest: str) -> None:
    """The job's pictures into its folder of the run; the shared ground truth and input beside it."""
    if not dest or not src.is_dir():
        return
    dest = Path(dest)
    for f in src.rglob("*.png"):
        rel = f.relative_to(src)
        target = dest.parent / rel if rel.parts[0] in SHARED else dest / rel
        if target.parent != dest.parent or not target.exists():
            atomic_write_bytes(target, f.read_bytes())
