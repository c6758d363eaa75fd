"""Image-quality metrics with metadata (direction, unit, convention) that drives sorting and tables.

The metric interface (:mod:`zoo.plugins.metric_interface`) and the core metrics' registration
(:mod:`zoo.plugins.core_metrics`) live with the plugin machinery; this package holds the implementations, and
:func:`zoo.metrics.build.build_metric` builds any registered metric by name.
"""

from zoo.plugins.metric_interface import Metric, MetricInfo, MetricResult, MetricUnavailable

__all__ = ["Metric", "MetricInfo", "MetricResult", "MetricUnavailable"]
