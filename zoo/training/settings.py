"""How one model is trained, apart from the model, its config and its data: one object, built once.

``zoo train``, a suite's training jobs, :func:`zoo.training.loop.train` from Python and the bench's dry run
all describe a training with a :class:`TrainSettings`; the job carries it, the loop and the dry run read it,
and :func:`run_key` derives the run's content address from it. A setting added here reaches every caller.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError
from zoo.plugins.codehash import entry_code_hash
from zoo.plugins.config import config_to_dict
from zoo.store.cache import content_key
from zoo.training import validation


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    seed: int = 0
    # Colorizers learn on the colour LR images, the data downscaled by the benchmark's SR scale; SR models
    # take their scale from config.scale.
    data_scale: int = 1
    checkpoint_every: int = 100
    precision: str = "auto"  # auto, fp32, bf16, fp16 (zoo.runtime.devicefacts.choose_precision)
    channels_last: bool | None = None  # None: the loop's default for the device (default_channels_last)
    deterministic: bool = False  # zoo.runtime.determinism
    workers: int | None = None  # loader processes; None: zoo.runtime.devicefacts.loader_plan
    read_every: int | None = None  # steps between reads of the losses; None: devicefacts.read_every
    val: Any = None  # held-out images (a data spec or data set) validated on every val_every steps
    val_every: int = 0  # 0: 20 times a run (zoo.training.validation.spacing)
    command: str | None = None  # the command line recorded in the checkpoint (None: this process's)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ZooError(f"steps must be at least 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise ZooError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.val_every < 0:
            raise ZooError(f"val_every must be at least 0 (0: 20 validations a run), got {self.val_every}")

    @property
    def validation_spacing(self) -> int:
        """Steps between validations (whether or not the run validates)."""
        return validation.spacing(self.val_every, self.steps)

    def replace(self, **changes) -> TrainSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_options(cls, **options) -> TrainSettings:
        """Settings from keyword options, an unknown one refused by name (the Python API's keywords)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown training setting '{unknown[0]}' (settings: {', '.join(sorted(known))})")
        return cls(**options)


def run_key(entry, config, data_fingerprint: str, settings: TrainSettings, val_fingerprint: str | None = None) -> str:
    """Content address of a training run: everything its weights depend on, the plugin's source code
    included (:mod:`zoo.plugins.codehash`), and its validation (held-out data, spacing) when it has one: the
    weights do not depend on it, but the run folder does.

    The one place a key is computed, so ``zoo train``'s folder name, the bench's cache and the loop agree."""
    return content_key(run_payload(entry, config, data_fingerprint, settings, val_fingerprint))


def run_keys(entry, config, data_fingerprint: str, settings: TrainSettings,
             val_fingerprint: str | None = None) -> tuple[str, str, str]:
    """``(run key, lineage, code hash)`` from one payload. The lineage is the run key without the code: runs of
    one model, config, data and settings whose code differs share it, so the bench can say that a model retrains
    because its code changed."""
    payload = run_payload(entry, config, data_fingerprint, settings, val_fingerprint)
    key = content_key(payload)
    code = payload.pop("code")
    return key, content_key(payload), code


def run_payload(entry, config, data_fingerprint: str, settings: TrainSettings,
                val_fingerprint: str | None = None) -> dict[str, Any]:
    """What :func:`run_key` hashes."""
    recipe = entry.recipe
    payload = {
        "model": entry.name,
        "distribution": entry.distribution,
        "version": entry.version,
        "config": config_to_dict(config),
        "recipe": f"{recipe.__module__}.{recipe.__qualname__}" if recipe else None,
        "data": data_fingerprint,
        "seed": settings.seed,
        "steps": settings.steps,
        "data_scale": settings.data_scale,
        "code": entry_code_hash(entry),
    }
    if settings.precision != "auto":  # only when asked for, so keys of default runs stay as they were
        payload["precision"] = settings.precision
    if settings.channels_last is not None:  # likewise: only an explicit memory format
        payload["channels_last"] = bool(settings.channels_last)
    if settings.deterministic:  # a cached run trained without it is not what --deterministic promises
        payload["deterministic"] = True
    if val_fingerprint is not None:  # else a cached run without val.jsonl would be taken for one with it
        payload["validation"] = [val_fingerprint, settings.validation_spacing, validation.FORMAT]
    return payload
