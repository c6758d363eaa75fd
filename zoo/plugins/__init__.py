"""How a model or a metric plugs in: the hook specs, the registry, the entries a plugin registers, the
contract and config bases it is checked against, the model, recipe and metric interfaces, the core metrics'
registration, and the code hash that keys caches on a plugin's source. It imports nothing of zoo but
``zoo.errors``: every other layer stands on it."""

import os
from pathlib import Path

PLUGIN_PATH_VAR = "ZOO_PLUGIN_PATH"


def plugin_paths() -> list[Path]:
    """The plugin files and folders ``ZOO_PLUGIN_PATH`` names (``zoo --plugin`` sets it), joined by
    ``os.pathsep``: the registry loads them, the listing cache is keyed on them. Here, at no import cost."""
    raw = os.environ.get(PLUGIN_PATH_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
