"""Pictures for a published markdown board: per test set and stage, one grid per sample image with every
model of that stage side by side (input, each output, ground truth), drawn from the outputs a run saved at
native size. The grids go in a folder named after the board, beside it, so the board and its pictures move
together and the markdown links them relatively."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.boards.leaderboard import STAGE_TITLES, headline_metric
from zoo.boards.pictures import comparison_grid
from zoo.data.degrade import make_triple
from zoo.data.imageio import read_image
from zoo.store.files import atomic_write_bytes
from zoo.store.runs import read_run, safe_name, sample_dir, test_set_label

# Rows of one grid: the stage's models, and for a pipeline the SR model it shares (one grid per SR model).
_MODEL = {"colorizer": "colorizer", "sr": "sr", "pipeline": "colorizer"}


def _groups(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """``(scale, test_set, stage, order, shared sr) -> one row per model``, models ranked as on the board."""
    tables: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # the board's tables: stage, test set, scale
    for r in rows:
        if r.get("stage") in _MODEL and r.get(_MODEL[r["stage"]]) is not None:
            tables[(r["scale"], r["test_set"], r["stage"])].append(r)
    by_group: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (scale, test_set, stage), table in tables.items():
        rank_metric = headline_metric(table, stage)
        for r in table:
            key = (scale, test_set, stage, r.get("order") or "", r.get("sr") if stage == "pipeline" else None)
            slot = by_group[key].setdefault(r[_MODEL[stage]], {**r, "_rank": None})
            if r.get("metric") == rank_metric and r.get("value") is not None:
                slot["_rank"] = r["value"] if r.get("higher_is_better", True) else -r["value"]
    return {k: sorted(v.values(), key=lambda r: (r["_rank"] is None, -(r["_rank"] or 0.0)))
            for k, v in sorted(by_group.items(), key=lambda kv: tuple(str(x) for x in kv[0]))}


def _title(stage: str, test_set: str, scale: int, sr: str | None) -> str:
    what = STAGE_TITLES.get(stage, stage).split(":")[0]
    return f"{test_set_label(test_set)}, x{scale}: {what}" + (f" (SR: {sr})" if sr else "")


def write_board_pictures(run_dirs: list[Path], board: Path) -> str:
    """Draw the grids of every run into ``<board stem>/`` beside ``board``; return the markdown section that
    shows them ("" when the runs saved no pictures). Grids this call did not draw are removed from that
    folder, so a regenerated board never links a stale picture."""

    folder = board.parent / board.stem
    lines: list[str] = []
    drawn: set[Path] = set()
    for run_dir in run_dirs:
        _, rows = read_run(run_dir)
        for (scale, test_set, stage, order, sr), models in _groups(rows).items():
            dirs = [(m[_MODEL[stage]], run_dir / sample_dir(stage, order, m.get("colorizer"), m.get("sr"),
                                                            test_set, scale)) for m in models]
            dirs = [(name, d) for name, d in dirs if (d / "out").is_dir()]
            if not dirs:
                continue
            shared = dirs[0][1].parent
            truth_dir = shared / ("_truth_lr" if stage == "colorizer" else "_truth_hr")
            input_dir = shared / ("_truth_lr" if stage == "sr" else "_input")
            images = sorted(p.name for p in (dirs[0][1] / "out").glob("*.png"))
            section = [f"### {_title(stage, test_set, scale, sr)}", ""]
            for image in images:
                if not (truth_dir / image).is_file():
                    continue
                truth = read_image(truth_dir / image)
                if (input_dir / image).is_file():
                    shown_input = read_image(input_dir / image)
                elif stage == "sr":  # an SR-only run saves no colour LR: the bench's own degradation remakes it
                    shown_input = make_triple(truth[None], scale).lr[0]
                else:
                    continue
                outputs = [(name, d / "out" / image) for name, d in dirs if (d / "out" / image).is_file()]
                panels = [("colour LR input" if stage == "sr" else "gray input", shown_input),
                          *[(name, read_image(p)) for name, p in outputs],
                          ("ground truth", truth)]
                label = "-".join(x for x in (f"x{scale}", test_set_label(test_set), stage, sr, Path(image).stem) if x)
                target = folder / f"{safe_name(label)}.png"
                title = f"{Path(image).stem}: " + ", ".join(name for name, _ in outputs) + " (ranked as on the board)"
                comparison_grid(target, title=title, panels=panels, truth=truth)
                drawn.add(target)
                section.append(f"![{Path(image).stem}, {stage}]({folder.name}/{target.name})")
                section.append("")
            if len(section) > 2:
                lines.extend(section)
    curves = _copy_curves(run_dirs, folder)
    drawn.update(folder / name for name in curves)
    for stale in folder.glob("*.png") if folder.is_dir() else ():
        if stale not in drawn:
            stale.unlink()
    if curves:
        lines = ["### Training curves", "",
                 "Per model, its main loss (the Training table's) on top, training smoothed and held-out dashed, "
                 "with the means over the first and last tenth of the steps as black bars; its other terms below.",
                 "", *[f"![training curves]({folder.name}/{name})" for name in curves], "", *lines]
    if not lines:
        return ""
    return "\n".join(["## Pictures", "",
                      "Each grid: the stage's input, every model's output (best first by the board's ranking "
                      "metric), the ground truth; under each, a detail at native pixels.", "", *lines])


def _copy_curves(run_dirs: list[Path], folder: Path) -> list[str]:
    """Each run's ``curves.png`` copied into the board's folder (the run folder is not published); their names."""

    sources = [d / "curves.png" for d in run_dirs if (d / "curves.png").is_file()]
    names = []
    for i, src in enumerate(sources):
        name = "curves.png" if len(sources) == 1 else f"curves-{i + 1}-{safe_name(src.parent.name)}.png"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / name, src.read_bytes())
        names.append(name)
    return names
