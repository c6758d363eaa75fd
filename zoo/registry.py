"""The model registry: plugins found through the ``zoo`` entry-point group, loaded one by one.

Design choices, and why:
- Each plugin is imported and each of its hooks called on its own, so one broken plugin is reported as a
  :class:`~zoo.errors.PluginWarning` naming its distribution, and every other model still works.
- A name registered by two distributions is never overwritten: the name is withdrawn, ``get`` raises an
  error naming both, and the rest of the registry is usable.
- ``ZOO_PLUGINS=dist1,dist2`` loads only those distributions; ``ZOO_DISABLE_PLUGINS=dist`` skips one.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib.metadata
import os
import re
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from zoo import hookspecs
from zoo.config import apply_overrides, as_mapping
from zoo.errors import PluginConflictError, PluginWarning, UnknownModelError, ZooError

ENTRY_POINT_GROUP = "zoo"
TASKS = ("colorizer", "sr")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelEntry:
    """Everything the zoo knows about one model.

    ``config`` is a dataclass type whose defaults are the paper's configuration; ``presets`` maps a preset
    name (``paper``, ``tiny``, ...) to field overrides. ``build(config)`` returns a
    :class:`zoo.Colorizer` or :class:`zoo.SuperResolver`. ``recipe`` says how to train it (``None`` for
    models with nothing to learn, such as the baselines).
    """

    name: str
    build: Callable[[Any], Any]
    config: type
    summary: str
    reference: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipe: Any = None
    # Pretrained files (zoo.weights.WeightFile) the model can use; listed by `zoo weights`.
    weights: tuple = ()
    # Filled in by the registry, not by the plugin.
    task: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def trainable(self) -> bool:
        return self.recipe is not None

    def make_config(self, preset: str | None = None, overrides: dict[str, Any] | Iterable[str] = ()):
        """The config for ``preset`` (default: the dataclass defaults) with ``overrides`` applied.

        ``overrides`` is a mapping or ``key=value`` strings, coerced to each field's type.
        """
        cfg = self.config()
        if preset is not None:
            if preset not in self.presets:
                known = ", ".join(sorted(self.presets)) or "none"
                raise ZooError(f"model '{self.name}' has no preset '{preset}' (presets: {known})")
            cfg = apply_overrides(cfg, self.presets[preset], where=f"preset '{preset}' of '{self.name}'")
        return apply_overrides(cfg, overrides, where=f"model '{self.name}'")

    def create(self, preset: str | None = None, overrides=(), **kw):
        """Build the model. Extra keyword arguments are config overrides (``scale=4``)."""
        cfg = self.make_config(preset, {**as_mapping(overrides), **kw})
        return self.build(cfg)

    def parameter_count(self, preset: str | None = None, **kw) -> int:
        """Parameters of the model at ``preset``, counted on the meta device (no memory, no weights)."""
        from zoo.models import count_parameters

        with torch_meta_device():
            return count_parameters(self.create(preset, **kw))


class torch_meta_device:
    """Build modules on the meta device so counting parameters allocates nothing and loads no weights."""

    def __enter__(self):
        import torch

        self._ctx = torch.device("meta")
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    location: str = ""
    models: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Registry:
    """Models registered by plugins. Build one with :func:`load_registry`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._entries: dict[str, ModelEntry] = {}
        self._conflicts: dict[str, list[str]] = {}

    # -- loading -------------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, *, name: str, distribution: str | None = None, version: str = "",
                   location: str = "") -> PluginInfo:
        """Register a plugin object (a module or any object with hookimpls) and run its hooks now.

        This is also how tests add a plugin without installing anything.
        """
        info = PluginInfo(name=name, distribution=distribution or name, version=version, location=location)
        self.plugins.append(info)
        try:
            self.pm.register(plugin, name=f"{info.distribution}:{name}")
        except Exception as exc:  # a malformed hookimpl (wrong signature) is the plugin's bug
            self._fail(info, "registering its hooks", exc)
            return info
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        for hook_name, task in (("register_colorizers", "colorizer"), ("register_sr_models", "sr")):
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                caller(register=functools.partial(self._register, info, task))
            except Exception as exc:
                self._fail(info, f"running {hook_name}", exc)
        return info

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

    def _register(self, info: PluginInfo, task: str, entry: ModelEntry) -> None:
        if not isinstance(entry, ModelEntry):
            raise TypeError(f"register() takes a zoo.ModelEntry, got {type(entry).__name__}")
        if not _NAME_RE.match(entry.name):
            raise ValueError(f"model name {entry.name!r} must be lower case: letters, digits, '_', '-', '.'")
        if not dataclasses.is_dataclass(entry.config):
            raise TypeError(f"model '{entry.name}': config must be a dataclass type")
        entry = dataclasses.replace(entry, task=task, distribution=info.distribution, version=info.version)
        info.models.append(entry.name)
        if entry.name in self._conflicts:
            self._conflicts[entry.name].append(info.distribution)
        elif entry.name in self._entries:
            first = self._entries.pop(entry.name)
            self._conflicts[entry.name] = [first.distribution, info.distribution]
        else:
            self._entries[entry.name] = entry

    # -- queries -------------------------------------------------------------------------------------
    @property
    def conflicts(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._conflicts.items()}

    def conflict_messages(self) -> list[str]:
        return [_conflict_message(name, owners) for name, owners in sorted(self._conflicts.items())]

    def names(self, task: str | None = None) -> list[str]:
        return sorted(n for n, e in self._entries.items() if task is None or e.task == task)

    def entries(self, pattern: str | None = None, task: str | None = None) -> list[ModelEntry]:
        if task is not None and task not in TASKS:
            raise ZooError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
        return [self._entries[n] for n in self.names(task) if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def get(self, name: str, task: str | None = None) -> ModelEntry:
        if name in self._conflicts:
            raise PluginConflictError(_conflict_message(name, self._conflicts[name]))
        entry = self._entries.get(name)
        if entry is None or (task is not None and entry.task != task):
            kind = {"colorizer": "colorizer", "sr": "SR model"}.get(task or "", "model")
            candidates = self.names(task)
            close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
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
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _conflict_message(name: str, owners: list[str]) -> str:
    dists = " and ".join(f"'{d}'" for d in owners)
    return (
        f"model name '{name}' is registered by more than one plugin distribution ({dists}); it is unusable "
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
    """Load every plugin of the ``zoo`` entry-point group (honouring ``ZOO_PLUGINS`` and
    ``ZOO_DISABLE_PLUGINS``), then the given ``(name, plugin_object)`` pairs."""
    registry = Registry()
    if entry_points:
        only, disabled = _env_set("ZOO_PLUGINS"), _env_set("ZOO_DISABLE_PLUGINS")
        seen: set[tuple[str, str]] = set()
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=_ep_sort_key):
            dist = ep.dist.name if ep.dist is not None else ep.name
            version = ep.dist.version if ep.dist is not None else ""
            if (dist, ep.name) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((dist, ep.name))
            keys = {_normalise(dist), _normalise(ep.name)}
            if only is not None and not keys & only:
                continue
            if disabled is not None and keys & disabled:
                continue
            location = _dist_location(ep)
            try:
                module = ep.load()
            except Exception as exc:
                info = PluginInfo(name=ep.name, distribution=dist, version=version, location=location)
                registry.plugins.append(info)
                registry._fail(info, f"importing '{ep.value}'", exc)
                continue
            registry.add_plugin(module, name=ep.name, distribution=dist, version=version,
                                location=getattr(module, "__file__", None) or location)
    for name, plugin in plugins:
        registry.add_plugin(plugin, name=name)
    return registry


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
