"""Image-quality metrics with metadata (direction, unit, convention) that drives sorting and tables.

The interface is :mod:`zoo.metrics.base`; the core metrics register through :mod:`zoo.metrics.builtin` as a
plugin's would, and :func:`zoo.metrics.build.build_metric` builds any registered one by name.
"""

from zoo.metrics.base import Metric, MetricInfo, MetricResult, MetricUnavailable

__all__ = ["Metric", "MetricInfo", "MetricResult", "MetricUnavailable"]
