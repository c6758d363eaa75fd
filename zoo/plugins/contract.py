"""The contract between a model plugin and the core, in one place, checked when a model registers.

What the core reads from a plugin's :class:`~zoo.ModelEntry`:

- ``config``: a dataclass type whose every field has a default (the paper's configuration). The training
  loop reads the fields of :class:`TrainConfig` (``batch_size``, ``patch_size``) from a trainable model's
  config, and an SR model's config has the field of :class:`SRConfig` (``scale``). Extending these bases is
  the easy way to have them; any dataclass with the same fields and types is accepted.
- ``presets``: ``{"name": {field: value}}``, each field an existing one, each value of its type.
- ``build(config)``: returns a :class:`zoo.Colorizer` (L (B, 1, H, W) in [0, 100] -> ab (B, 2, H, W) in Lab
  units) or a :class:`zoo.SuperResolver` (RGB (B, 3, h, w) in [0, 1] -> (B, 3, s*h, s*w)).
- field names: one name per idea across models (README, "Config fields"): ``lr``, ``adam_beta1`` /
  ``adam_beta2`` / ``adam_eps``, ``features`` (a base width), ``d_features`` (a discriminator's),
  ``blocks`` (residual blocks), ``widths`` (one width per level), ``*_weight`` (a loss term's weight).
  A config that renames a field lists ``RENAMED = {"old": "new"}`` on its class (the bases' entries are
  inherited), so the old name still explains itself.
- ``recipe``: for a trainable model, a :class:`zoo.Recipe` subclass with one or more uniquely named
  :class:`zoo.Stage` s; ``None`` for a model with nothing to learn.

:func:`entry_problems` checks what can be checked without building anything (it runs at registration, for
every model, so it must stay cheap); ``zoo check`` (:mod:`zoo.harness.conformance`) builds, runs and trains the model.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import ClassVar

from zoo.errors import ZooError
from zoo.plugins.config import apply_overrides

# Function-level imports: the Recipe class (torch) loads only to check a trainable entry, so registration stays light.


@dataclass
class TrainConfig:
    """The config fields every trainable model has: what the loop reads (batch and crop size) and the optimiser
    vocabulary its recipe reads (:meth:`zoo.Recipe.adam`). A trainable model's config extends this class and
    overrides the defaults with its paper's values."""

    batch_size: int = 16  # images per optimiser step
    # Side of a square training crop, in input pixels of the model: LR pixels for SR models (the HR crop
    # is scale times larger), pixels of the colour LR image for colorizers.
    patch_size: int = 48

    lr: float = 1e-4  # the learning rate (of every optimiser, unless the model's config says otherwise)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999

    # Names used before the vocabulary was unified (zoo 0.1): only those whose new name a config has apply.
    RENAMED: ClassVar[dict[str, str]] = {"beta1": "adam_beta1", "beta2": "adam_beta2", "n_feats": "features",
                                         "n_blocks": "blocks", "ngf": "features", "ndf": "d_features",
                                         "d_feats": "d_features"}


@dataclass
class SRConfig:
    """The config field every SR model has: its integer upscaling factor."""

    scale: int = 2


# (field, type, why the core needs it) for each part of the contract.
TRAIN_FIELDS = (("batch_size", int, "the training loop batches by it"),
                ("patch_size", int, "the training loop crops patches of this side"))
SR_FIELDS = (("scale", int, "the SR task needs its upscaling factor"),)


def _field_problems(config: type, required, types_: dict) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(config)}
    problems = []
    for name, kind, why in required:
        if name not in fields:
            problems.append(f"config {config.__name__} has no field '{name}' ({why}; "
                            f"extend zoo.{'SRConfig' if name == 'scale' else 'TrainConfig'})")
        elif types_.get(name) is not kind:
            problems.append(f"config field '{name}' must be declared as {kind.__name__}, "
                            f"not {getattr(types_.get(name), '__name__', types_.get(name))}")
    return problems


def entry_problems(entry, task: str) -> list[str]:
    """What is wrong with ``entry`` as a model of ``task`` ("colorizer" or "sr"); empty when it conforms."""
    from zoo.plugins.recipe import Recipe, Stage

    if not callable(entry.build):
        return ["build must be callable: build(config) -> model"]
    config = entry.config
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        return [f"config must be a dataclass type, got {config!r}"]
    try:
        types_ = typing.get_type_hints(config)
    except Exception as exc:  # an annotation naming something that does not exist
        return [f"config {config.__name__} has annotations that do not resolve: {exc}"]
    try:
        defaults = config()
    except TypeError as exc:
        return [f"config {config.__name__} must build with no arguments (every field needs a default): {exc}"]
    problems = []
    if task == "sr":
        problems += _field_problems(config, SR_FIELDS, types_)
    if entry.recipe is not None:
        problems += _field_problems(config, TRAIN_FIELDS, types_)
        for name in ("batch_size", "patch_size"):
            value = getattr(defaults, name, 1)
            if isinstance(value, int) and value < 1:
                problems.append(f"config default {name}={value} must be at least 1")
        recipe = entry.recipe
        if not (isinstance(recipe, type) and issubclass(recipe, Recipe)):
            problems.append(f"recipe must be a zoo.Recipe subclass, got {recipe!r}")
        else:
            stages = getattr(recipe, "stages", ())
            if not stages or not all(isinstance(s, Stage) for s in stages):
                problems.append(f"recipe {recipe.__name__}.stages must be a non-empty tuple of zoo.Stage")
            elif len({s.name for s in stages}) != len(stages):
                problems.append(f"recipe {recipe.__name__} has two stages with the same name")
            elif sum(max(0.0, s.fraction) for s in stages) <= 0:
                problems.append(f"recipe {recipe.__name__}: stage fractions add up to zero")
    if not isinstance(entry.presets, dict):
        problems.append(f"presets must be a dict of name -> field overrides, got {type(entry.presets).__name__}")
    else:
        for preset, overrides in entry.presets.items():
            if not isinstance(overrides, dict):
                problems.append(f"preset '{preset}' must be a dict of field overrides")
                continue
            for key, value in overrides.items():
                problem = _preset_value_problem(defaults, types_, preset, key, value)
                if problem:
                    problems.append(problem)
    if not isinstance(entry.summary, str) or not entry.summary.strip():
        problems.append("summary must be a non-empty one-line string")
    return problems


# What the evaluation hands every metric's build (a metric uses the ones it needs): always accepted.
COMMON_SETTINGS = ("shave", "device", "cache_dir")


def metric_settings(build) -> set[str] | None:
    """The settings a metric's ``build`` takes: its keyword parameters, plus the evaluation's common ones that
    its ``**params`` receive. None when its signature cannot be read (a C callable): nothing to check."""
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} | set(COMMON_SETTINGS)


def metric_problems(entry) -> list[str]:
    """What is wrong with a :class:`zoo.MetricEntry`; empty when it conforms. Its ``build`` must take the
    settings the evaluation passes, and its direction and unit are declared (a board shows them before any
    number exists). What ``build()`` returns is checked where it is built (:func:`zoo.metrics.build.build_metric`)
    and by ``zoo check --metrics``."""
    problems = []
    if not callable(entry.build):
        return ["build must be callable: build(**params) -> zoo.Metric"]
    if not isinstance(entry.higher_is_better, bool):
        problems.append("higher_is_better must be True or False")
    if not isinstance(entry.unit, str):
        problems.append(f"unit must be a string ('' for none), got {type(entry.unit).__name__}")
    if not isinstance(entry.ranked, bool):
        problems.append("ranked must be True or False")
    if not isinstance(entry.summary, str) or not entry.summary.strip():
        problems.append("summary must be a non-empty one-line string")
    if not getattr(entry.build, "signature_checked_when_built", False):
        try:
            params = list(inspect.signature(entry.build).parameters.values())
        except (TypeError, ValueError):
            params = None
        if params is not None:
            named = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
            missing = [s for s in COMMON_SETTINGS if s not in named]
            if missing and not any(p.kind == p.VAR_KEYWORD for p in params):
                problems.append(f"build() must accept the settings the evaluation passes every metric "
                                f"({', '.join(COMMON_SETTINGS)}): end its signature with **params")
            required = [p.name for p in params if p.default is p.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if required:
                problems.append(f"build() must work with keyword settings alone: '{required[0]}' has no default")
    return problems


def _preset_value_problem(defaults, types_: dict, preset: str, key: str, value) -> str | None:
    # A preset is code, not user input: a string where a number belongs is a bug, not something to coerce.
    kind = types_.get(key)
    if kind in (int, float, bool) and isinstance(value, str):
        return f"preset '{preset}': '{key}' must be {kind.__name__}, got {value!r}"
    try:
        apply_overrides(defaults, {key: value}, where=f"preset '{preset}'")
    except ZooError as exc:
        return str(exc)
    return None
