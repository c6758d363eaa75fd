"""Checkpoints: weights as safetensors plus a JSON sidecar (model, config, recipe, data, versions).

``model.safetensors`` + ``model.json``. Loading never unpickles anything: safetensors holds only tensors,
and the JSON names a registered model whose builder makes the module. Every write is atomic (temporary
file, then ``os.replace``), so a crash leaves either the old file or the new one, never half of one.

The two files are two writes, so a crash between them pairs new weights with old metadata. A checkpoint of
a training run therefore stamps its run key and step into the safetensors header, and loading compares
the stamp with the sidecar: a torn pair is refused, never used (``zoo.training.loop`` rewrites it on resume).
The JSON also records the weights' sha256, checked on every load, so weights truncated, swapped or damaged
in transit are refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import zoo
from zoo.errors import ZooError
from zoo.plugins.config import apply_overrides
from zoo.plugins.registry import get_registry
from zoo.runtime import rngstate
from zoo.store.files import atomic_write_bytes, atomic_write_json

FORMAT = "zoo-checkpoint/1"
STAMP_KEYS = ("run_key", "steps")  # sidecar fields copied into the safetensors header (as strings)


def atomic_torch_save(path: Path, obj: Any) -> None:
    """For training state (optimisers): plain tensors and containers, loadable with ``weights_only=True``."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _state_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import _remove_duplicate_names, save

    state = model.state_dict()
    # Tied parameters appear under several names; safetensors stores each storage once.
    to_remove = _remove_duplicate_names(state)
    for dropped in to_remove.values():
        for name in dropped:
            del state[name]
    return save({k: v.detach().contiguous().cpu() for k, v in state.items()}, metadata=metadata)


def sidecar(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar. ``meta`` must name the model (``model``) and
    hold its ``config`` as a dict."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors: {path}")
    for key in ("model", "config"):
        if key not in meta:
            raise ValueError(f"checkpoint meta needs '{key}'")

    stamp = {k: str(meta[k]) for k in STAMP_KEYS if k in meta}
    data = _state_bytes(model, stamp or None)
    info = {"format": FORMAT, **meta, "sha256": hashlib.sha256(data).hexdigest(),
            "versions": {"zoo": zoo.__version__, "torch": torch.__version__, **meta.get("versions", {})}}
    atomic_write_bytes(path, data)
    atomic_write_json(sidecar(path), info)
    return path


def _header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """The safetensors header of ``path``: (metadata, name -> shape), read without loading any tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # not a safetensors file, or a torn one
        raise ZooError(f"cannot read weights from {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def torn(path: Path, meta: dict[str, Any]) -> str | None:
    """Why the weights in ``path`` are not the ones its sidecar ``meta`` describes, or None when they are
    (or when the file carries no stamp: a checkpoint from elsewhere)."""
    stamp, _ = _header(path)
    for key in STAMP_KEYS:
        if key in stamp and key in meta and stamp[key] != str(meta[key]):
            return f"its weights are of {key} {stamp[key]} but {sidecar(path).name} says {meta[key]}"
    return None


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    meta: dict[str, Any]
    entry: Any  # zoo.ModelEntry
    config: Any
    path: Path


def read_meta(path: Path) -> dict[str, Any]:
    path = Path(path)
    side = sidecar(path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    if not side.is_file():
        raise ZooError(f"checkpoint {path} has no metadata file {side.name} beside it")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"checkpoint metadata {side} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ZooError(f"{side} is not a zoo checkpoint (format {found!r}, expected {FORMAT!r})")
    if not isinstance(meta.get("model"), str) or not meta["model"]:
        raise ZooError(f"{side}: 'model' must name a registered model, got {meta.get('model')!r}")
    if not isinstance(meta.get("config", {}), dict):
        raise ZooError(f"{side}: 'config' must be a table of settings, got {meta.get('config')!r}")
    return meta


def load_checkpoint(path: Path, registry=None, device: torch.device | str = "cpu") -> LoadedCheckpoint:
    """Rebuild the registered model named in the sidecar and load its weights (strictly)."""
    from safetensors.torch import load as load_bytes


    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        raise ZooError(f"{path}: zoo checkpoints are .safetensors files with a .json beside them; "
                       "convert a .pth state dict with zoo.store.checkpoint.import_state_dict")
    meta = read_meta(path)
    registry = registry or get_registry()
    try:
        entry = registry.get(meta["model"])
    except ZooError as exc:
        raise ZooError(f"checkpoint {path.name} is for model '{meta['model']}', which is not registered here "
                       f"({exc})") from None
    config = apply_overrides(entry.config(), meta.get("config", {}), where=f"checkpoint {path.name}",
                             migrate=True)
    problem = torn(path, meta)
    if problem:
        raise ZooError(f"checkpoint {path} is torn ({problem}: a crash between its two writes); rerun the "
                       f"training command to repair it")
    _check_shapes_before_building(entry, config, path)
    model = entry.build(config)
    data = path.read_bytes()
    expected = meta.get("sha256")  # absent in checkpoints written before it was recorded
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ZooError(f"checkpoint {path.name}: the weights' sha256 differs from the one recorded in "
                       f"{sidecar(path).name} (a damaged or swapped file); refusing to load it")
    try:
        state = load_bytes(data)
    except Exception as exc:
        raise ZooError(f"cannot read weights from {path}: {exc}") from None
    _load_strict(model, state, path)
    model.to(device).eval()
    return LoadedCheckpoint(model=model, meta=meta, entry=entry, config=config, path=path)


def _check_shapes_before_building(entry, config, path: Path) -> None:
    """Compare the file's tensors with the model the config describes, built on the meta device (no
    memory): a sidecar whose config would allocate terabytes is refused before anything is allocated."""
    _, shapes = _header(path)
    try:
        with torch.device("meta"):
            model = entry.build(config)
    except Exception:  # a builder that cannot run on the meta device: the real build and load check it
        return
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # Tied tensors are stored once under one of their names: any name of the group will do.
    group: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        group.setdefault(id(t), []).append(name)
    twins = {n: names for names in group.values() for n in names}
    wrong = [f"{k}: file {shapes[k]} vs model {v}" for k, v in expected.items() if k in shapes and shapes[k] != v]
    unexpected = [k for k in shapes if k not in expected]
    missing = [k for k in expected if k not in shapes and not any(t in shapes for t in twins.get(k, ()))]
    if wrong or unexpected or missing:
        detail = "; ".join(wrong[:3] + [f"unexpected {k}" for k in unexpected[:3]]
                           + [f"missing {k}" for k in missing[:3]])
        raise ZooError(f"checkpoint {path.name} does not fit model config: {detail}")


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    # Names dropped as duplicates of tied storage come back from their twin.
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong or unexpected:
        detail = "; ".join(wrong[:3] + [f"unexpected {k}" for k in unexpected[:3]])
        raise ZooError(f"checkpoint {path.name} does not fit model config: {detail}")
    result = model.load_state_dict(state, strict=False)
    still_missing = [k for k in result.missing_keys if k in missing and not _is_tied(model, k)]
    if still_missing:
        raise ZooError(f"checkpoint {path.name} lacks tensors: {', '.join(still_missing[:5])}")


def _is_tied(model: nn.Module, key: str) -> bool:
    state = model.state_dict()
    ptr = state[key].data_ptr()
    return any(k != key and v.data_ptr() == ptr for k, v in state.items())


def import_state_dict(pth: Path) -> dict[str, torch.Tensor]:
    """Tensors of a third-party ``.pth``/``.pt`` file, read with ``weights_only=True`` (no code runs)."""
    try:
        obj = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ZooError(f"refusing to load {pth}: it is not a plain tensor file ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ZooError(f"{pth} does not hold a state dict of tensors")
    return obj


# -- a training run's checkpoints: the published pair and state.pt, written and found together

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
