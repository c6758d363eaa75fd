"""zoo: a plugin-based model zoo and benchmark suite for colorization and super-resolution.

Everything a plugin author needs is importable from here: the hook marker, the two entries a hook
registers, the config bases of the contract (:mod:`zoo.contract`), the model interfaces, the training
recipe classes and the metric interface.
"""

__version__ = "0.1.0"

from zoo.config import bounded  # noqa: E402
from zoo.contract import SRConfig, TrainConfig  # noqa: E402
from zoo.entries import MetricEntry, ModelEntry  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.hookspecs import hookimpl  # noqa: E402
from zoo.metrics.base import Metric, MetricInfo, MetricResult, MetricUnavailable  # noqa: E402
from zoo.models import Colorizer, SuperResolver  # noqa: E402
from zoo.recipe import Recipe, Stage  # noqa: E402
from zoo.registry import Registry, get_registry, load_registry  # noqa: E402

__all__ = [
    "Colorizer",
    "Metric",
    "MetricEntry",
    "MetricInfo",
    "MetricResult",
    "MetricUnavailable",
    "ModelEntry",
    "Recipe",
    "Registry",
    "SRConfig",
    "Stage",
    "SuperResolver",
    "TrainConfig",
    "ZooError",
    "__version__",
    "bounded",
    "get_registry",
    "hookimpl",
    "load_registry",
]
