"""The registry: plugins found through the ``zoo`` entry-point group, loaded one by one.

Design choices, and why:
- Each plugin is imported and each of its hooks called on its own, so one broken plugin is reported as a
  :class:`~zoo.errors.PluginWarning` naming its distribution, and every other model still works.
- Every entry is checked against :mod:`zoo.plugins.contract` as it registers: one that breaks the contract is
  withdrawn with one line naming its distribution, name and field, instead of crashing a training later.
- A name registered by two distributions is never overwritten: the name is withdrawn, ``get`` raises an
  error naming both, and the rest of the registry is usable.
- A function marked ``@zoo.hookimpl`` that matches no hook, or a hook-named function without the mark,
  is reported: both would otherwise register nothing, silently.
- The core metrics register through the same hook, from a plugin object that is always loaded (so
  ``ZOO_PLUGINS`` restricts plugin distributions, never PSNR).
- ``ZOO_PLUGINS=dist1,dist2`` loads only those distributions; ``ZOO_DISABLE_PLUGINS=dist`` skips one.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

import zoo
from zoo.errors import PluginConflictError, PluginWarning, UnknownModelError, ZooError, did_you_mean
from zoo.plugins import core_metrics, hookspecs, plugin_paths
from zoo.plugins.contract import entry_problems, metric_problems
from zoo.plugins.entries import MetricEntry, ModelEntry, torch_meta_device  # noqa: F401  (re-exported)

ENTRY_POINT_GROUP = "zoo"
TASKS = ("colorizer", "sr")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")
# hook name -> what it registers ("colorizer" / "sr" models, or "metric")
HOOKS = {"register_colorizers": "colorizer", "register_sr_models": "sr", "register_metrics": "metric"}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    location: str = ""
    models: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Names:
    """One namespace of registered entries (models, or metrics) with the duplicate-name rule."""

    def __init__(self) -> None:
        self.entries: dict = {}
        self.conflicts: dict[str, list[str]] = {}
        self.invalid: dict[str, str] = {}  # name -> why it broke the contract

    def add(self, entry) -> None:
        name = entry.name
        if name in self.conflicts:
            self.conflicts[name].append(entry.distribution)
        elif name in self.entries:
            first = self.entries.pop(name)
            self.conflicts[name] = [first.distribution, entry.distribution]
        else:
            self.entries[name] = entry


class Registry:
    """Models and metrics registered by plugins. Build one with :func:`load_registry`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._models = _Names()
        self._metrics = _Names()

    # -- loading -------------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, *, name: str, distribution: str | None = None, version: str = "",
                   location: str = "") -> PluginInfo:
        """Register a plugin object (a module or any object with hookimpls) and run its hooks now.

        This is also how tests add a plugin without installing anything.
        """
        info = PluginInfo(name=name, distribution=distribution or name, version=version, location=location)
        self.plugins.append(info)
        try:
            self.pm.register(plugin, name=f"{info.distribution}:{name}:{len(self.plugins)}")
        except Exception as exc:  # a malformed hookimpl (wrong signature) is the plugin's bug
            self._fail(info, "registering its hooks", exc)
            return info
        self._check_hook_names(info, plugin)
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        for hook_name, kind in HOOKS.items():
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                caller(register=functools.partial(self._register, info, kind))
            except (Exception, SystemExit, KeyboardInterrupt) as exc:  # a plugin must not end zoo
                self._fail(info, f"running {hook_name}", exc)
        return info

    def _check_hook_names(self, info: PluginInfo, plugin: object) -> None:
        # pluggy's check_pending, per plugin: a marked function with no hook spec is never called.
        for attr in dir(plugin):
            if attr.startswith("__"):
                continue
            value = getattr(plugin, attr, None)
            marked = self.pm.parse_hookimpl_opts(plugin, attr) is not None
            if marked and attr not in HOOKS:
                self._warn(info, f"function '{attr}' is marked @zoo.hookimpl but matches no hook"
                                 f"{did_you_mean(attr, HOOKS)} (hooks: {', '.join(HOOKS)}); it is never called")
            elif (not marked and callable(value) and attr.startswith("register_")
                  and getattr(value, "__module__", None) == getattr(plugin, "__name__", None)
                  and (attr in HOOKS or difflib.get_close_matches(attr, HOOKS, n=1, cutoff=0.8))):
                self._warn(info, f"function '{attr}' looks like a hook but is not marked @zoo.hookimpl"
                                 f"{'' if attr in HOOKS else did_you_mean(attr, HOOKS)}; it is never called")

    def _warn(self, info: PluginInfo, message: str) -> None:
        info.errors.append(message)
        warnings.warn(f"plugin '{info.name}' from distribution '{info.distribution}': {message}", PluginWarning,
                      stacklevel=3)

    def _fail(self, info: PluginInfo, during: str, exc: BaseException) -> None:
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" ({os.path.basename(where.filename)}:{where.lineno})" if where else ""
        message = f"{type(exc).__name__}: {exc}{at}"
        info.errors.append(f"{during}: {message}")
        warnings.warn(
            f"plugin '{info.name}' from distribution '{info.distribution}' failed while {during}: {message}; "
            "its models are unavailable, all others work",
            PluginWarning,
            stacklevel=2,
        )

    def _register(self, info: PluginInfo, kind: str, entry) -> None:
        expected = MetricEntry if kind == "metric" else ModelEntry
        if not isinstance(entry, expected):
            raise TypeError(f"register() in this hook takes a zoo.{expected.__name__}, got {type(entry).__name__}")
        if not isinstance(entry.name, str) or not _NAME_RE.match(entry.name):
            raise ValueError(f"name {entry.name!r} must be lower case: letters, digits, '_', '-', '.'")
        if kind == "metric":
            entry = dataclasses.replace(entry, distribution=info.distribution, version=info.version)
            problems = metric_problems(entry)
            names, listed = self._metrics, info.metrics
        else:
            entry = dataclasses.replace(entry, task=kind, distribution=info.distribution, version=info.version)
            problems = entry_problems(entry, kind)
            names, listed = self._models, info.models
        listed.append(entry.name)
        if problems:
            what = "metric" if kind == "metric" else "model"
            message = (f"{what} '{entry.name}' from distribution '{info.distribution}' breaks the plugin contract: "
                       f"{'; '.join(problems)}. It is unusable; everything else works")
            names.invalid[entry.name] = message
            info.errors.append(message)
            warnings.warn(message, PluginWarning, stacklevel=2)
            return
        names.add(entry)

    # -- model queries --------------------------------------------------------------------------------
    @property
    def conflicts(self) -> dict[str, list[str]]:
        both = {**self._models.conflicts, **self._metrics.conflicts}
        return {k: list(v) for k, v in both.items()}

    def conflict_messages(self, skip=()) -> list[str]:
        """One line per conflicting name, but those in ``skip``."""
        return ([_conflict_message(n, o) for n, o in sorted(self._models.conflicts.items()) if n not in skip]
                + [_conflict_message(n, o, "metric") for n, o in sorted(self._metrics.conflicts.items())
                   if n not in skip])

    @property
    def invalid(self) -> dict[str, str]:
        """Entries withdrawn for breaking the contract: name -> the one-line reason."""
        return {**self._models.invalid, **self._metrics.invalid}

    def names(self, task: str | None = None) -> list[str]:
        return sorted(n for n, e in self._models.entries.items() if task is None or e.task == task)

    def entries(self, pattern: str | None = None, task: str | None = None) -> list[ModelEntry]:
        if task is not None and task not in TASKS:
            raise ZooError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
        return [self._models.entries[n] for n in self.names(task)
                if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def get(self, name: str, task: str | None = None) -> ModelEntry:
        if name in self._models.conflicts:
            raise PluginConflictError(_conflict_message(name, self._models.conflicts[name]))
        entry = self._models.entries.get(name)
        if entry is None and name in self._models.invalid:
            raise ZooError(self._models.invalid[name])
        if entry is None or (task is not None and entry.task != task):
            kind = {"colorizer": "colorizer", "sr": "SR model"}.get(task or "", "model")
            hint = did_you_mean(name, self.names(task))
            if entry is not None:
                hint = f"; '{name}' is a {entry.task} model" + hint
            raise UnknownModelError(f"unknown {kind} '{name}'{hint} (see 'zoo list')")
        return entry

    def select(self, patterns: Iterable[str], task: str) -> list[ModelEntry]:
        """Resolve names and glob patterns (``edsr*``) to entries, in order, without duplicates."""
        chosen: list[ModelEntry] = []
        for pattern in patterns:
            if any(ch in pattern for ch in "*?["):
                found = self.entries(pattern, task)
                if not found:
                    raise ZooError(f"no {task} model matches '{pattern}' (see 'zoo list --task {task}')")
            else:
                found = [self.get(pattern, task)]
            chosen.extend(e for e in found if e not in chosen)
        return chosen

    def __contains__(self, name: str) -> bool:
        return name in self._models.entries

    def __len__(self) -> int:
        return len(self._models.entries)

    def __bool__(self) -> bool:  # `registry or get_registry()` must keep a registry that has no models
        return True

    # -- metric queries -------------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return sorted(self._metrics.entries)

    def metrics(self, pattern: str | None = None) -> list[MetricEntry]:
        return [self._metrics.entries[n] for n in self.metric_names()
                if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def metric(self, name: str) -> MetricEntry:
        if name in self._metrics.conflicts:
            raise PluginConflictError(_conflict_message(name, self._metrics.conflicts[name], "metric"))
        entry = self._metrics.entries.get(name)
        if entry is None:
            if name in self._metrics.invalid:
                raise ZooError(self._metrics.invalid[name])
            raise ZooError(f"unknown metric '{name}'{did_you_mean(name, self.metric_names(), n=2, cutoff=0.6)} "
                           f"(metrics: {', '.join(self.metric_names())})")
        return entry


def _conflict_message(name: str, owners: list[str], what: str = "model") -> str:
    dists = " and ".join(f"'{d}'" for d in owners)
    return (
        f"{what} name '{name}' is registered by more than one plugin distribution ({dists}); it is unusable "
        f"until one is uninstalled or disabled with ZOO_DISABLE_PLUGINS=<distribution>"
    )


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_set(var: str) -> set[str] | None:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    return {_normalise(x) for x in raw.split(",") if x.strip()}


def load_registry(*, entry_points: bool = True, plugins: Iterable[tuple[str, object]] = ()) -> Registry:
    """The core metrics, then every plugin of the ``zoo`` entry-point group (honouring ``ZOO_PLUGINS`` and
    ``ZOO_DISABLE_PLUGINS``), then the given ``(name, plugin_object)`` pairs."""
    registry = Registry()
    registry.add_plugin(core_metrics, name="zoo.metrics", distribution="zoo", version=zoo.__version__,
                        location=core_metrics.__file__)
    if entry_points:
        _load_entry_points(registry)
        _load_paths(registry)
    for name, plugin in plugins:
        registry.add_plugin(plugin, name=name)
    return registry


def _load_entry_points(registry: Registry) -> None:
    only, disabled = _env_set("ZOO_PLUGINS"), _env_set("ZOO_DISABLE_PLUGINS")
    seen: set[tuple[str, str]] = set()
    known: set[str] = set()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=_ep_sort_key):
        dist = ep.dist.name if ep.dist is not None else ep.name
        version = ep.dist.version if ep.dist is not None else ""
        if (dist, ep.name) in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add((dist, ep.name))
        keys = {_normalise(dist), _normalise(ep.name)}
        known |= keys
        if only is not None and not keys & only:
            continue
        if disabled is not None and keys & disabled:
            continue
        location = _dist_location(ep)
        try:
            module = ep.load()
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # a plugin must not end zoo
            info = PluginInfo(name=ep.name, distribution=dist, version=version, location=location)
            registry.plugins.append(info)
            registry._fail(info, f"importing '{ep.value}'", exc)
            continue
        registry.add_plugin(module, name=ep.name, distribution=dist, version=version,
                            location=getattr(module, "__file__", None) or location)
    for var, names in (("ZOO_PLUGINS", only), ("ZOO_DISABLE_PLUGINS", disabled)):
        for name in sorted((names or set()) - known):  # a typo would otherwise load (or skip) nothing, silently
            warnings.warn(f"{var} names '{name}', which is no installed plugin distribution or entry point"
                          f"{did_you_mean(name, known)}", PluginWarning, stacklevel=3)


def _load_paths(registry: Registry) -> None:
    """Modules and packages loaded from paths, beside the installed plugins: a plugin tried without installing
    it. Each is the distribution ``path:NAME``; it is imported under its own name, so its package's relative
    imports and its code hash work as for an installed one."""
    for path in plugin_paths():
        name = path.stem if path.suffix == ".py" else path.name
        info = PluginInfo(name=name, distribution=f"path:{name}", version="", location=str(path))
        try:
            module = _import_path(path, name)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            registry.plugins.append(info)
            registry._fail(info, f"importing '{path}'", exc)
            continue
        registry.add_plugin(module, name=name, distribution=info.distribution, version="", location=str(path))


def _import_path(path: Path, name: str):
    if path.is_dir():
        init = path / "__init__.py"
        if not init.is_file():
            raise ZooError(f"{path} is a folder without __init__.py: give a module file or a package folder")
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
    elif path.is_file():
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        raise ZooError(f"no such plugin file or folder: {path}")
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) != spec.origin:
        raise ZooError(f"cannot load {path} as '{name}': a module of that name is already imported "
                       f"({getattr(sys.modules[name], '__file__', None) or 'built in'}); rename the file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _ep_sort_key(ep) -> tuple[str, str]:
    return ((ep.dist.name if ep.dist is not None else ""), ep.name)


def _dist_location(ep) -> str:
    try:
        return str(ep.dist.locate_file("")) if ep.dist is not None else ""
    except Exception:  # some finders cannot locate files; the location is informational
        return ""


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, loaded once from entry points."""
    return load_registry()
