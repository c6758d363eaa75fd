"""Typed model configs: dataclasses whose fields can be overridden from the CLI and from suites.

Every value set from outside (``--set``, a suite, a preset, a checkpoint's sidecar) is coerced to the field's
type and checked against its bounds, so a nonsense value is one line before anything is built:

- a float must be finite (``lr=nan`` would train on NaN);
- an int must be >= 0 unless its default is negative (a count or a width is never negative; a default of
  -1 marks a sentinel), and the contract's sizes (``batch_size``, ``patch_size``, ``scale``) >= 1;
- a field may declare its own bounds: ``features: int = zoo.bounded(64, min=1)`` (dataclass field metadata
  ``min`` / ``max``), also checked for each item of a tuple field.

A field that was renamed stays known by its old name (:func:`renamed_fields`): typed by a user it is an
error naming the new field, read from a checkpoint's sidecar it is mapped, so old checkpoints still load.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from zoo.errors import ZooError, did_you_mean

# The contract's fields (zoo.plugins.contract): the training loop and the SR task size tensors by them.
SIZE_FIELDS = ("batch_size", "patch_size", "scale")


def bounded(default: Any, *, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
    """A dataclass field with bounds that every override is checked against: ``zoo.bounded(64, min=1)``."""
    metadata = {k: v for k, v in (("min", min), ("max", max)) if v is not None}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, annotation: Any, key: str, where: str) -> Any:
    """Turn a string (from the command line) or a TOML value into the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ZooError as exc:
                errors.append(str(exc))
        raise ZooError(errors[0] if errors else f"{where}: bad value {value!r} for '{key}'")
    if origin is typing.Literal:
        if value not in args:
            raise ZooError(f"{where}: '{key}' must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else list(value)
        item_type = args[0] if args else str
        coerced = [_coerce(v.strip() if isinstance(v, str) else v, item_type, key, where) for v in items]
        return tuple(coerced) if origin is tuple else coerced
    try:
        if annotation is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if annotation is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        name = getattr(annotation, "__name__", str(annotation))
        raise ZooError(f"{where}: '{key}' must be {name}, got {value!r}") from None
    return value


def renamed_fields(cfg: Any) -> dict[str, str]:
    """``{old name: new name}`` for a config class or instance: the ``RENAMED`` class attributes along its
    bases (a subclass wins), limited to new names that are fields of this config."""
    cls = cfg if isinstance(cfg, type) else type(cfg)
    names = {f.name for f in dataclasses.fields(cls)}
    merged: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("RENAMED", {}))
    return {old: new for old, new in merged.items() if new in names and old not in names}


def as_mapping(overrides: Any) -> dict[str, Any]:
    """Overrides as a dict, from a mapping or from ``key=value`` strings."""
    if isinstance(overrides, dict):
        return dict(overrides)
    out = {}
    for item in overrides or ():
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ZooError(f"override '{item}' is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(cfg: Any, overrides: Any, where: str = "config", *, migrate: bool = False) -> Any:
    """A copy of dataclass ``cfg`` with ``overrides`` (mapping or ``key=value`` strings) applied.

    An old field name is an error, or with ``migrate`` (values read from a file written by an older zoo)
    the value goes to the field's new name.
    """
    mapping = as_mapping(overrides)
    if not mapping:
        return cfg
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    renamed = renamed_fields(cfg)
    changes = {}
    for key, value in mapping.items():
        if key in renamed:
            if not migrate:
                raise ZooError(f"{where}: setting '{key}' is now called '{renamed[key]}' "
                               f"(one name per idea across models: see README, 'Config fields')")
            if renamed[key] in mapping:
                continue  # the file has both names; the new one wins
            key = renamed[key]
        if key not in fields:
            hint = did_you_mean(key, fields, n=1, cutoff=0.6) or f" (fields: {', '.join(fields)})"
            raise ZooError(f"{where} has no setting '{key}'{hint}")
        changes[key] = _coerce(value, hints.get(key, Any), key, where)
        _check_bounds(changes[key], fields[key], key, where)
    return dataclasses.replace(cfg, **changes)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _int_lower_bound(f: dataclasses.Field) -> int | None:
    """The bound an int value of ``f`` gets without metadata: 1 for the contract's sizes, else 0 unless the
    default is negative (a sentinel such as -1)."""
    if f.name in SIZE_FIELDS:
        return 1
    default = _field_default(f)
    items = default if isinstance(default, (tuple, list)) else (default,)
    return None if any(isinstance(v, (int, float)) and v < 0 for v in items) else 0


def _check_bounds(value: Any, f: dataclasses.Field, key: str, where: str) -> None:
    hi = f.metadata.get("max")
    for v in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ZooError(f"{where}: '{key}' must be a finite number, got {v}")
        lo = f.metadata["min"] if "min" in f.metadata else (_int_lower_bound(f) if isinstance(v, int) else None)
        if lo is not None and v < lo:
            raise ZooError(f"{where}: '{key}' must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise ZooError(f"{where}: '{key}' must be at most {hi}, got {v}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
