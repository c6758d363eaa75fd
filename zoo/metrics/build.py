"""Any registered metric, core or plugin, by name: what the evaluation and :func:`zoo.create_metric` build."""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.plugins.metric_interface import Metric, MetricInfo
from zoo.plugins.registry import get_registry


def available_metrics(registry=None) -> list[str]:
    """Names of every registered metric (core and plugins)."""
    return (registry or get_registry()).metric_names()


def build_metric(name: str, registry=None, **params) -> Metric:
    """Build a registered metric by name. Raises :class:`MetricUnavailable` when it cannot run here."""
    entry = (registry or get_registry()).metric(name)
    metric = entry.build(**params)
    if not isinstance(getattr(metric, "info", None), MetricInfo):
        raise ZooError(f"metric '{name}' from '{entry.distribution}': build() must return a zoo.Metric with an "
                       f"info (zoo.MetricInfo), got {type(metric).__name__}")
    return metric
