"""A registered metric as a ``torch.nn.Module``: what :func:`zoo.create_metric` returns.

Two ways to use it, on RGB batches in [0, 1] of shape (B, 3, H, W):

- ``metric(pred, target)`` returns this batch's per-image scores, a (B,) tensor, and leaves the running
  totals alone (a pure function, like a loss module);
- ``metric.update(pred, target)`` per batch, then ``metric.compute()`` gives the
  :class:`~zoo.plugins.metric_interface.MetricResult` over everything seen (mean, std, n, per-image values), exactly
  as ``zoo eval`` and the bench compute it; ``reset()`` starts again.

``info`` (name, ``higher_is_better``, ``unit``, ``convention``) is the metadata the leaderboards print.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.metrics import MetricInfo, MetricResult
from zoo.metrics.build import build_metric
from zoo.plugins.contract import metric_settings
from zoo.plugins.registry import get_registry


class MetricModule(nn.Module):
    """One registered metric with its convention fixed at creation (``shave=4``, ``device="cuda"``, ...)."""

    def __init__(self, name: str, *, registry=None, **convention):
        super().__init__()

        registry = registry or get_registry()
        entry = registry.metric(name)
        known = metric_settings(entry.build)
        unknown = sorted(set(convention) - known) if known is not None else []
        if unknown:
            raise ZooError(f"metric '{name}' has no setting '{unknown[0]}' (settings: {', '.join(sorted(known))})")
        self.name, self.convention_params, self._registry = name, dict(convention), registry
        # Plain attributes, not submodules: a metric's networks stay on the device given at creation.
        self.__dict__["_metric"] = build_metric(name, registry=registry, **convention)
        self.__dict__["_scratch"] = None  # a second instance for forward(), built on first use

    # -- metadata, as on the boards ----------------------------------------------------------------------
    @property
    def info(self) -> MetricInfo:
        return self._metric.info

    @property
    def higher_is_better(self) -> bool:
        return self.info.higher_is_better

    @property
    def unit(self) -> str:
        return self.info.unit

    @property
    def convention(self) -> str:
        return self.info.convention

    # -- accumulate ------------------------------------------------------------------------------------
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self._metric.update(pred, target)

    def compute(self) -> MetricResult:
        return self._metric.compute()

    def reset(self) -> None:
        self._metric.reset()

    # -- score one batch -------------------------------------------------------------------------------
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image scores of this batch, (B,) float64 on ``pred``'s device; the running totals are untouched."""
        if self._scratch is None:
            self.__dict__["_scratch"] = build_metric(self.name, registry=self._registry, **self.convention_params)
        scratch = self._scratch
        scratch.reset()
        scratch.update(pred, target)
        result = scratch.compute()
        scratch.reset()
        if result.per_image is None:
            raise ZooError(f"metric '{self.name}' scores a set of images, not each image: call update(pred, "
                           "target) for every batch, then compute()")
        return torch.tensor(result.per_image, dtype=torch.float64, device=pred.device)

    def extra_repr(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.convention_params.items())
        return f"{self.name!r}{', ' + settings if settings else ''}"
