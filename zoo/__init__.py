"""zoo: a plugin-based model zoo and benchmark suite for colorization and super-resolution."""

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.models import Colorizer, SuperResolver
from zoo.registry import ModelEntry, Registry, get_registry, load_registry

__version__ = "0.1.0"

__all__ = [
    "Colorizer",
    "ModelEntry",
    "Registry",
    "SuperResolver",
    "ZooError",
    "__version__",
    "get_registry",
    "hookimpl",
    "load_registry",
]
