"""Image-quality metrics with metadata (direction, unit, convention) that drives sorting and tables."""

from zoo.metrics.base import Metric, MetricInfo, MetricResult, MetricUnavailable, available_metrics, build_metric

__all__ = ["Metric", "MetricInfo", "MetricResult", "MetricUnavailable", "available_metrics", "build_metric"]
