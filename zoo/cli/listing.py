"""What ``zoo list`` and shell completion show, cached so that they need not import the plugins (or torch).

Model names, presets and parameter counts come from plugin code, and plugin code imports torch: listing
them honestly means running that code once. The result -- every model's row, the metric names, and the
warnings and conflicts loading produced -- is kept in ``<cache>/listing.json`` under a key computed without
importing anything: the ``zoo`` entry points with their distributions' versions, the size and mtime of
every file of the plugin modules and of zoo itself, the versions of torch, torchvision, timm, ...,
``ZOO_PLUGINS`` / ``ZOO_DISABLE_PLUGINS`` and the Python version. Any change rebuilds it.

Parameter counts (models built on the meta device) take seconds for large models, so they are filled in
the first time ``zoo list`` shows a row, and kept.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from zoo.plugins import plugin_paths
from zoo.runtime.provenance import package_versions
from zoo.store.cache import cache_root, content_key
from zoo.store.files import atomic_write_json

# Function-level imports: the registry (every plugin) loads only on a cache miss, so `zoo list` and completion
# stay fast.

# zoo.plugins.registry is imported only when the listing must be built: a cached listing needs no plugin machinery

FORMAT = 1


def _files(module: str) -> list[Path]:
    """The source files of a top-level module or package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(p for d in spec.submodule_search_locations for p in Path(d).rglob("*.py"))
    return [Path(spec.origin)] if spec.origin and os.path.isfile(spec.origin) else []


def cache_key() -> str:
    """A fingerprint of everything the listing depends on (see the module docstring)."""
    parts: list[Any] = [FORMAT, sys.version, os.environ.get("ZOO_PLUGINS", ""),
                        os.environ.get("ZOO_DISABLE_PLUGINS", ""), package_versions()]
    for path in _plugin_path_files():  # plugins tried without installing them (zoo --plugin)
        try:
            st = path.stat()
        except OSError:
            parts.append([str(path), None])
            continue
        parts.append([str(path), st.st_size, st.st_mtime_ns])
    modules = {"zoo"}
    for ep in importlib.metadata.entry_points(group="zoo"):
        dist = ep.dist
        parts.append([ep.name, ep.value, dist.name if dist else "", dist.version if dist else ""])
        modules.add(ep.value.split(":")[0].split(".")[0])
    for module in sorted(modules):
        for f in _files(module):
            try:
                st = f.stat()
            except OSError:
                continue
            parts.append([str(f), st.st_size, st.st_mtime_ns])
    return content_key(parts, length=24)


def _plugin_path_files() -> list[Path]:
    return [f for p in plugin_paths() for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]


def _path() -> Path:
    return cache_root() / "listing.json"


def _row(entry) -> dict[str, Any]:
    return {"name": entry.name, "task": entry.task, "params": None, "distribution": entry.distribution,
            "version": entry.version, "presets": sorted(entry.presets), "trainable": entry.trainable,
            "summary": entry.summary, "reference": entry.reference}


class Listing:
    """The cached listing; rows are ``zoo list --json``'s, plus ``counted`` and ``build_error``."""

    def __init__(self, data: dict[str, Any], registry=None):
        self.data, self._registry = data, registry

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.data["models"]

    @property
    def metrics(self) -> list[str]:
        return self.data["metrics"]

    @property
    def warnings(self) -> list[str]:
        return self.data["warnings"]

    @property
    def conflicts(self) -> list[str]:
        return self.data["conflicts"]

    def registry(self):
        """The real registry (imports the plugins), for what the listing does not hold yet."""
        if self._registry is None:
            from zoo.plugins.registry import get_registry

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # already recorded in the listing, and shown from there
                self._registry = get_registry()
        return self._registry

    def count(self, rows: list[dict[str, Any]]) -> bool:
        """Fill in the parameter counts of ``rows`` not counted yet; True when something was counted."""
        todo = [r for r in rows if not r.get("counted")]
        for row in todo:
            try:
                row["params"] = self.registry().get(row["name"]).parameter_count()
            except Exception as exc:  # a plugin's builder is the plugin's bug: report, keep listing
                row["build_error"] = f"model '{row['name']}' ({row['distribution']}) failed to build: {exc}"
            row["counted"] = True
        return bool(todo)

    def save(self) -> None:
        try:
            atomic_write_json(_path(), self.data)
        except OSError:  # a read-only cache only costs speed
            pass


def _build(key: str) -> Listing:
    from zoo.plugins.registry import get_registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = get_registry()
    data = {"key": key, "models": [_row(e) for e in registry.entries()], "metrics": registry.metric_names(),
            "warnings": list(dict.fromkeys(str(w.message) for w in caught)),
            "conflicts": registry.conflict_messages()}
    return Listing(data, registry)


def load_listing(refresh: bool = False) -> Listing:
    """The cached listing if it is current, else a new one (which imports the plugins) saved for next time."""
    key = cache_key()
    if not refresh:
        try:
            data = json.loads(_path().read_text())
            if data.get("key") == key:
                return Listing(data)
        except (OSError, ValueError):  # missing or torn: rebuild
            pass
    listing = _build(key)
    listing.save()
    return listing
