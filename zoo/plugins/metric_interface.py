"""The metric interface shared by pixel metrics (PSNR, SSIM) and perceptual ones (LPIPS, FID, KID, ...).

A metric is fed batches of predictions and targets (RGB in [0, 1], (B, 3, H, W), any device) with
``update`` and summarised with ``compute``. Its :class:`MetricInfo` says which way is better, the unit, and
the convention string a leaderboard prints beside every number (``Y, shave=2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:  # annotations only: zoo.MetricInfo and the registry's metric entries stay torch-free
    import torch


@dataclass(frozen=True)
class MetricInfo:
    name: str  # column name, e.g. "psnr_y"
    higher_is_better: bool
    unit: str  # "dB", "" ...
    convention: str  # printed with every number, e.g. "Y, shave=4"
    description: str = ""
    # False for descriptive numbers with no better direction (e.g. colourfulness, compared with the
    # ground truth's): shown in tables, never bolded or used to rank.
    ranked: bool = True

    @property
    def arrow(self) -> str:
        if not self.ranked:
            return ""
        return "↑" if self.higher_is_better else "↓"


@dataclass
class MetricResult:
    info: MetricInfo
    value: float | None  # None when unavailable
    std: float | None = None
    n: int = 0
    per_image: list[float] | None = None
    unavailable: str | None = None  # why, and how to fix it
    weights: dict[str, str] = field(default_factory=dict)  # weight file name -> sha256 prefix
    note: str | None = None  # how the value was obtained when that needs saying (e.g. capped PSNR)
    failed: str | None = None  # the metric itself broke (a plugin's bug), naming it; other metrics are unaffected

    @property
    def available(self) -> bool:
        return (self.value is not None and self.unavailable is None and self.failed is None
                and math.isfinite(self.value))

    def to_dict(self) -> dict:
        # JSON has no NaN or infinity: a non-finite value is no value, with the reason
        finite = self.value is not None and math.isfinite(self.value)
        unavailable = self.unavailable
        if self.value is not None and not finite and unavailable is None:
            unavailable = f"not a finite number ({self.value})"
        out = {
            "metric": self.info.name,
            "value": self.value if finite else None,
            "std": self.std if self.std is not None and math.isfinite(self.std) else None,
            "n": self.n,
            "higher_is_better": self.info.higher_is_better,
            "ranked": self.info.ranked,
            "unit": self.info.unit,
            "convention": self.info.convention,
            "unavailable": unavailable,
            "weights": dict(self.weights),
        }
        if self.note:
            out["note"] = self.note
        if self.failed:
            out["failed"] = self.failed
        return out


class MetricUnavailable(ZooError):
    """A metric cannot run here (typically missing pretrained weights). The message says how to fix it."""


class Metric:
    """Base class: subclasses set ``info`` and implement ``update`` and ``compute``."""

    info: MetricInfo
    # The smallest side (in pixels, after any shave) of an image this metric can score; the evaluation
    # skips smaller images with a warning naming them instead of failing on them.
    min_size: int = 1

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> MetricResult:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


# The core metrics' factories, filled by ``@metric_factory`` as their modules import; they reach the registry
# through zoo.plugins.core_metrics's ``register_metrics`` hook, like a plugin's metrics.
_FACTORIES: dict[str, Callable[..., Metric]] = {}


def metric_factory(*names: str):
    """Decorator for the core metrics: a factory ``f(name, **params) -> Metric`` for one or more names."""

    def deco(fn):
        for n in names:
            _FACTORIES[n] = fn
        return fn

    return deco
