"""The files of a training run folder (:func:`zoo.training.train` writes them), and reading them back::

    model.safetensors, model.json   the weights and what they are (config, recipe, data, notes, versions)
    state.pt                        weights, optimisers, RNG state and step: enough to continue exactly
    log.jsonl                       one line of losses per step (for curves), written at each checkpoint
    val.jsonl                       the losses on held-out crops, one line per validation (:mod:`zoo.validation`)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zoo import rngstate
from zoo.checkpoint import atomic_torch_save, atomic_write_bytes, save_checkpoint, sidecar, torn
from zoo.errors import ZooError

VAL_LOG = "val.jsonl"
VAL_REFERENCE = "reference"  # a val.jsonl line's reference losses ({loss: value}; Recipe.reference_losses)


def write_checkpoint(model, recipe, ckpt_path: Path, state_path: Path, meta: dict, key: str, step: int,
                     stage: str, seconds: float) -> None:
    """One checkpoint. ``state.pt`` is the unit a resume trusts: weights, optimisers, RNG and step in one
    atomic file, written first. The published pair (``model.safetensors`` + ``model.json``, what ``zoo eval``
    and the bench read) follows, each part stamped with the run key and step, so a crash between any two
    writes leaves either a complete older checkpoint or a torn pair that is detected and rewritten."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(state_path, {"key": key, "step": step, "stage": stage, "model": weights,
                                   "recipe": recipe.state_dict(), "rng": rngstate.capture(recipe.ctx.device),
                                   "notes": list(meta["notes"]), "seconds": seconds})
    save_checkpoint(ckpt_path, model, meta)


def finished_notes(ckpt_path: Path, key: str, steps: int) -> list[str] | None:
    """The notes of the run in ``ckpt_path`` if it is this run (``key``) and has all its ``steps``, else None.

    The sidecar is written after the weights, and both carry the step: a sidecar at the last step whose
    weights carry the same stamp means final weights, whatever became of ``state.pt`` (which is only needed
    to resume). Weights without a stamp come from before stamps existed, when the same order held.
    """
    try:
        meta = json.loads(sidecar(ckpt_path).read_text())
        done = meta.get("run_key") == key and int(meta.get("steps", -1)) >= steps and ckpt_path.is_file()
        if done and torn(ckpt_path, meta):
            done = False
    except (OSError, ValueError, TypeError, AttributeError, ZooError):  # missing, torn or foreign
        return None
    return list(meta.get("notes", [])) if done else None


def completed_steps(out_dir: Path, key: str, steps: int) -> int:
    """Steps of run ``key`` done in ``out_dir``: ``steps`` when finished, the last checkpoint's step when it can
    resume, else 0. Reads and writes nothing else (``zoo bench --dry-run``)."""
    out_dir = Path(out_dir)
    if finished_notes(out_dir / "model.safetensors", key, steps) is not None:
        return steps
    state = load_state(out_dir / "state.pt", key)
    return int(state["step"]) if state is not None else 0


def load_state(state_path: Path, key: str) -> dict[str, Any] | None:
    if not state_path.is_file():
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start afresh rather than crash
        return None
    # A state.pt without weights predates the one-file checkpoint: its weights file may be from another
    # step, so it cannot be resumed exactly.
    ok = isinstance(state, dict) and state.get("key") == key and isinstance(state.get("model"), dict)
    return state if ok else None


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
