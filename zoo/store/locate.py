"""Where a checkpoint is, from what a user writes: a file, a training run, a bench run or a Hub name.

- ``path/model.safetensors`` (its ``model.json`` beside it);
- a training run directory (``zoo train --out``, or one in the cache): its ``model.safetensors``;
- a bench run directory (holds ``run.json``): the checkpoint it trained for a model name (and scale);
- ``hf-hub:ORG/REPO[@REVISION]``: downloaded once into the Hub cache (:mod:`zoo.store.hub`).
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo.errors import ZooError
from zoo.store import hub
from zoo.store.runs import parse_model_key

SUFFIXES = (".safetensors", ".pth", ".pt")


def looks_like_checkpoint(spec: str) -> bool:
    """True when ``spec`` names a checkpoint rather than a registered model."""
    return hub.is_hub_spec(spec) or str(spec).endswith(SUFFIXES) or Path(spec).exists()


def bench_checkpoints(run_dir: Path) -> dict[str, str]:
    """``{"edsr@x2": checkpoint path}`` for every model a bench run trained (baselines have none)."""
    meta = json.loads((Path(run_dir) / "run.json").read_text())
    return {key: info["checkpoint"] for key, info in meta.get("models", {}).items()
            if isinstance(info, dict) and info.get("checkpoint") and not info.get("failed")}


def locate(spec, model: str | None = None, scale: int | None = None) -> Path:
    """The local ``.safetensors`` file for ``spec``. ``model`` and ``scale`` pick one of a bench run's."""
    if hub.is_hub_spec(spec):
        return hub.fetch(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        if (path / "run.json").is_file():
            return Path(_pick(path, model, scale))
        raise ZooError(f"{path} holds no checkpoint (no model.safetensors, and no run.json of a bench run)")
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    return path


def _pick(run_dir: Path, model: str | None, scale: int | None) -> str:
    trained = bench_checkpoints(run_dir)

    def wanted(key: str) -> bool:
        name, key_scale = parse_model_key(key)
        return (model is None or name == model) and (scale is None or key_scale == scale)

    chosen = {k: v for k, v in trained.items() if wanted(k)}
    if len(chosen) == 1:
        return next(iter(chosen.values()))
    have = ", ".join(sorted(trained)) or "none"
    if not chosen:
        what = f"'{model}'" if model else "model"
        raise ZooError(f"bench run {run_dir} has no trained {what}{f' at x{scale}' if scale else ''} (it has: {have})")
    raise ZooError(f"bench run {run_dir} trained several models ({have}): name one, e.g. "
                   f"zoo.create_model('{parse_model_key(next(iter(chosen)))[0]}', checkpoint=...) or --model, "
                   "and --scale")
