"""Run folders: what a training run and a bench run write, how their files are named, and reading them back.

A training run folder (:func:`zoo.training.loop.train` writes it)::

    model.safetensors, model.json   the weights and what they are (config, recipe, data, notes, versions)
    state.pt                        weights, optimisers, RNG state and step: enough to continue exactly
    log.jsonl                       one line of losses per step (for curves), written at each checkpoint
    val.jsonl                       losses on held-out crops, one line per validation (zoo.training.validation)

A bench run folder (:func:`zoo.harness.bench.run_bench` writes it): ``run.json`` (written last: a folder with
it holds a complete run), ``results.jsonl``, ``results.csv``, ``leaderboard.md``, ``samples/`` named by
:func:`sample_dir`, and models named by :func:`model_key`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.store.files import atomic_write_bytes


def model_key(name: str, scale: int) -> str:
    """How ``run.json`` names a model trained for one scale (``edsr@x2``): its ``models`` and ``params`` keys."""
    return f"{name}@x{scale}"


def parse_model_key(key: str) -> tuple[str, int]:
    """``(name, scale)`` of a :func:`model_key`."""
    name, _, scale = key.rpartition("@x")
    return name, int(scale)


def test_set_label(test: str) -> str:
    """How a test set is named on the boards: the embedded set by its name, a folder by its last part."""
    return test if test.startswith("samples") else Path(test).name


def safe_name(text: str) -> str:
    """``text`` as a file or folder name that works everywhere (Windows forbids ``<>:"/\\|?*``)."""
    return re.sub(r'[<>:"/\\|?*\s]+', "-", text).strip("-.") or "_"


def sample_dir(stage: str, order: str, colorizer: str | None, sr: str | None, test_set: str, scale: int) -> Path:
    """Where a row's pictures go, relative to the run folder."""
    name = "__".join(x for x in (stage, order, colorizer, sr) if x)
    return Path("samples") / f"x{scale}" / safe_name(test_set) / name


VAL_LOG = "val.jsonl"
VAL_REFERENCE = "reference"  # a val.jsonl line's reference losses ({loss: value}; Recipe.reference_losses)


def _log_lines(log_path: Path) -> list[dict[str, Any]]:
    # A kill can cut the last line short: such a line is dropped (its step is redone on resume).
    out = []
    for ln in log_path.read_text().splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            continue
    return out


def truncate_log(log_path: Path, step: int) -> None:
    if not log_path.exists():
        return
    if step == 0:
        log_path.unlink()
        return
    kept = [r for r in _log_lines(log_path) if r.get("step", 0) <= step]
    atomic_write_bytes(log_path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def read_log(run_dir: Path, name: str = "log.jsonl") -> list[dict[str, Any]]:
    """The lines of a run's ``log.jsonl`` (or of ``val.jsonl``: ``name=VAL_LOG``); [] when there is none."""
    path = Path(run_dir) / name
    return _log_lines(path) if path.exists() else []


def first_and_last_tenth(rows: list[dict[str, Any]], key: str, steps: int) -> tuple[float, float] | None:
    """Mean of ``key`` over the lines of the first and of the last tenth of ``steps`` (None when one is empty)."""
    first = [r[key] for r in rows if r.get("step", 0) <= steps / 10 and isinstance(r.get(key), (int, float))]
    last = [r[key] for r in rows if r.get("step", 0) > steps * 9 / 10 and isinstance(r.get(key), (int, float))]
    return (sum(first) / len(first), sum(last) / len(last)) if first and last else None


def loss_summary(run_dir: Path, steps: int) -> dict[str, Any] | None:
    """A run's main loss (the first one its steps log, which both the first and the last tenth of the run log),
    as the mean over the first and the last tenth of its steps; the same for its held-out validations and for
    their reference losses when it has them. None for a run that logged nothing to compare."""
    rows = read_log(run_dir)
    key = main_loss(rows, steps)
    if key is None:
        return None
    train = first_and_last_tenth(rows, key, steps)
    val = read_log(run_dir, VAL_LOG)
    held_out = first_and_last_tenth(val, key, steps)
    reference = first_and_last_tenth(reference_lines(val), key, steps)
    return {"loss": key, "train": list(train), "held_out": list(held_out) if held_out else None,
            "reference": list(reference) if reference and held_out else None}


def reference_lines(val: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reference losses of ``val.jsonl`` lines (the recipe's untrained answer on the same held-out crops), as
    lines of their own, ``{"step", <loss>: value}``, for the lines that carry them."""
    return [{"step": r["step"], **r[VAL_REFERENCE]} for r in val if isinstance(r.get(VAL_REFERENCE), dict)]


def main_loss(rows: list[dict[str, Any]], steps: int) -> str | None:
    """The first loss a run's steps log that both the first and the last tenth of ``steps`` log (what the
    board's Training table reports and the curves draw on top); None when no loss spans the run."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in ("step", "stage")]
    return next((k for k in keys if first_and_last_tenth(rows, k, steps) is not None), None)


_ROW_KEYS = ("stage", "test_set", "scale", "metric", "higher_is_better")  # what rendering a row needs


def _damaged(path: Path, why: str) -> ZooError:
    return ZooError(f"{path} {why}: the run folder is damaged (rerun the bench that wrote it)")


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a bench run folder, or one line saying what is wrong with it."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ZooError(f"{run_dir} is not a bench run directory (no run.json)")
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise ZooError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _damaged(path, f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _damaged(path, f"holds {type(meta).__name__}, not an object")
    return meta


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_dir = Path(run_dir)
    results = run_dir / "results.jsonl"
    if not results.is_file() or not (run_dir / "run.json").is_file():
        raise ZooError(f"{run_dir} is not a bench run directory (needs results.jsonl and run.json)")
    meta = read_run_meta(run_dir)
    try:
        lines = results.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"cannot read {results}: {getattr(exc, 'strerror', None) or exc}") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise _damaged(results, f"line {i} is not valid JSON, maybe cut short ({exc})") from None
        if not isinstance(row, dict) or any(k not in row for k in _ROW_KEYS):
            raise _damaged(results, f"line {i} is not a result row (needs {', '.join(_ROW_KEYS)})")
        rows.append(row)
    return meta, rows
