"""What a plugin hands to a ``register`` callback: a :class:`ModelEntry` or a :class:`MetricEntry`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError, did_you_mean
from zoo.plugins.config import apply_overrides, as_mapping

# Function-level imports: the model interfaces (torch) load only when a model is built or counted.


@dataclass(frozen=True)
class ModelEntry:
    """Everything the zoo knows about one model.

    ``config`` is a dataclass type whose defaults are the paper's configuration; ``presets`` maps a preset
    name (``paper``, ``tiny``, ...) to field overrides. ``build(config)`` returns a
    :class:`zoo.Colorizer` or :class:`zoo.SuperResolver`. ``recipe`` says how to train it (``None`` for
    models with nothing to learn, such as the baselines). :mod:`zoo.plugins.contract` says what each must satisfy.
    """

    name: str
    build: Callable[[Any], Any]
    config: type
    summary: str
    reference: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipe: Any = None
    # Pretrained files (zoo.WeightFile) the model can use; listed by `zoo weights`.
    weights: tuple = ()
    # Filled in by the registry, not by the plugin.
    task: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def trainable(self) -> bool:
        return self.recipe is not None

    def make_config(self, preset: str | None = None, overrides: dict[str, Any] | Iterable[str] = ()):
        """The config for ``preset`` (default: the dataclass defaults) with ``overrides`` applied.

        ``overrides`` is a mapping or ``key=value`` strings, coerced to each field's type.
        """
        cfg = self.config()
        if preset is not None:
            if preset not in self.presets:
                known = ", ".join(sorted(self.presets)) or "none"
                hint = did_you_mean(preset, self.presets, n=1, cutoff=0.6)
                raise ZooError(f"model '{self.name}' has no preset '{preset}'{hint} (presets: {known})")
            cfg = apply_overrides(cfg, self.presets[preset], where=f"preset '{preset}' of '{self.name}'")
        return apply_overrides(cfg, overrides, where=f"model '{self.name}'")

    def create(self, preset: str | None = None, overrides=(), **kw):
        """Build the model. Extra keyword arguments are config overrides (``scale=4``)."""
        cfg = self.make_config(preset, {**as_mapping(overrides), **kw})
        return self.build(cfg)

    def parameter_count(self, preset: str | None = None, **kw) -> int:
        """Parameters of the model at ``preset``, counted on the meta device (no memory, no weights)."""
        from zoo.plugins.interfaces import count_parameters

        with torch_meta_device():
            return count_parameters(self.create(preset, **kw))


@dataclass(frozen=True)
class MetricEntry:
    """One image-quality metric: how to build it, and the metadata that ranks by it.

    ``build(**params)`` returns a :class:`zoo.Metric`; ``params`` are the evaluation's convention
    (``shave``, ``device``, ``cache_dir``, ...), and a metric takes the ones it uses and ignores the rest
    (so its signature ends in ``**params``). ``higher_is_better`` and ``unit`` are what a board shows before
    any number exists (for instance when the metric is unavailable); ``ranked=False`` marks a descriptive
    number that is never bolded or sorted by.
    """

    name: str
    build: Callable[..., Any]
    higher_is_better: bool
    summary: str
    unit: str = ""
    ranked: bool = True
    reference: str = ""
    distribution: str = ""
    version: str = ""


class torch_meta_device:
    """Build modules on the meta device so counting parameters allocates nothing and loads no weights."""

    def __enter__(self):
        import torch

        self._ctx = torch.device("meta")
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
