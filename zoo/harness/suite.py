"""Benchmark suites: TOML files naming data, scale, presets, overrides, steps and metrics, and where suites
and their data are.

A suite is a built-in one by name or a TOML file given by path. The built-in suites are package data
(``zoo/harness/suites/*.toml``) read with :mod:`importlib.resources`, so a checkout, an editable install and a
wheel find the same files (a folder mapped in with ``package-dir`` would be invisible when zoo is imported
from a checkout on ``PYTHONPATH``).

Data paths in a suite: ``samples...`` (the embedded images), an absolute path, a path relative to the suite
file (user suites), or ``${ZOO_DATA}/...``. ``ZOO_DATA`` is the folder of the standard data sets: the
environment variable when set, else, when zoo runs from a source checkout, ``../shared/data`` beside the
checkout; an installed zoo has no default, and a suite that needs ``$ZOO_DATA`` then says so.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runtime.devicefacts import PRECISIONS

# Function-level imports: the data sets (image decoding) load only to check a suite's data, so `zoo suites` stays fast.

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORDERS = ("color-first", "sr-first", "both")


@dataclass
class Suite:
    name: str
    description: str = ""
    train: str = "samples:train"
    test: list[str] = field(default_factory=lambda: ["samples:test"])
    optional_test: list[str] = field(default_factory=list)  # used only when present (e.g. Urban100)
    # held-out images each training validates on (zoo.training.validation); "" = none. val_every 0: 20 times a run
    val: str = ""
    val_every: int = 0
    scales: list[int] = field(default_factory=lambda: [2])
    preset: str = "tiny"
    steps: int = 300
    steps_per_model: dict[str, int] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])
    colorizers: list[str] = field(default_factory=lambda: ["*"])
    sr: list[str] = field(default_factory=lambda: ["*"])
    order: str = "color-first"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sample_images: int = 3
    checkpoint_every: int = 100
    seed: int = 0
    # Training precision: "auto" (mixed on CUDA, float32 on a CPU), "fp32", "bf16" or "fp16" (CUDA).
    precision: str = "auto"
    source: str = ""

    def replace(self, **changes) -> Suite:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def model_config(self, entry, scale: int) -> tuple[str | None, dict[str, Any]]:
        """``(preset, overrides)`` that ``entry`` is built with at ``scale`` in this suite: the suite's preset if
        the model has it (else its default, the paper's config), the suite's overrides of it, and for an SR
        model the scale."""
        overrides = dict(self.overrides.get(entry.name, {}))
        if entry.task == "sr":
            overrides["scale"] = scale
        return (self.preset if self.preset in entry.presets else None), overrides


def available_suites() -> list[str]:
    return sorted(builtin_suites())


def find_suite(spec: str):
    """A user suite's path, or a built-in suite's file (an importlib.resources Traversable)."""
    p = Path(spec)
    if p.suffix == ".toml" or p.is_file():
        if not p.is_file():
            raise ZooError(f"suite file not found: {p}")
        return p
    builtin = builtin_suites()
    if spec in builtin:
        return builtin[spec]
    raise ZooError(f"unknown suite '{spec}' (suites: {', '.join(sorted(builtin)) or 'none found'}; "
                   "or give a .toml file)")


def load_suite(spec: str) -> Suite:
    """The suite ``spec`` (a name or a TOML path), every key checked for its type and range: a wrong suite is
    one line naming the key before anything runs (models and override fields: :func:`check_models`)."""
    path = find_suite(spec)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"suite {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"cannot read suite {path}: {exc}") from None
    known = {f.name for f in dataclasses.fields(Suite)} - {"source"}
    unknown = set(raw) - known
    if "scale" in raw:
        raise ZooError(f"suite {path}: use 'scales = [2]', a list")
    if unknown:
        raise ZooError(f"suite {path}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    _check_types(raw, f"suite {path}")
    name = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    suite = Suite(**{**raw, "name": raw.get("name", name), "source": str(path)})
    base = Path(str(path)).parent
    suite.train = _resolve(suite.train, base)
    suite.test = [_resolve(t, base) for t in suite.test]
    suite.optional_test = [_resolve(t, base) for t in suite.optional_test]
    suite.val = _resolve(suite.val, base) if suite.val else ""
    validate(suite)
    return suite


def _resolve(spec: str, base: Path) -> str:
    if spec.startswith("samples"):
        return spec
    spec = expand(spec)
    if PLACEHOLDER in spec:  # no data root here: kept, and named when the bench needs it
        return spec
    p = Path(spec).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


_TYPE_NAMES = {str: "a string", int: "an integer"}


def _type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return f"a list of {_type_name(args[0]).split(' ', 1)[1]}s"
    if origin is dict:
        if typing.get_origin(args[1]) is dict:
            return "a table of tables (key = value)"
        return f"a table of {_type_name(args[1]).split(' ', 1)[1]}s"
    return _TYPE_NAMES.get(annotation, str(annotation))


def _has_type(value, annotation) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _has_type(v, args[1]) for k, v in value.items())
    return True


def _check_types(values: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(Suite)
    for key, value in values.items():
        if key in hints and not _has_type(value, hints[key]):
            raise ZooError(f"{where}: '{key}' must be {_type_name(hints[key])}, got {value!r}")


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate(suite: Suite) -> None:
    """Types and ranges of every setting (also after command-line overrides)."""
    where = f"suite '{suite.name}'"
    _check_types({f.name: getattr(suite, f.name) for f in dataclasses.fields(Suite)}, where)
    if not _NAME_RE.match(suite.name) or ".." in suite.name:
        raise ZooError(f"{where}: 'name' must be a plain folder name (letters, digits, '.', '_', '-'), since it "
                       f"names the run folder runs/<name>-<time>")
    if suite.order not in ORDERS:
        raise ZooError(f"{where}: order must be one of {', '.join(ORDERS)}, got '{suite.order}'")
    if not suite.scales or any(not 1 <= s <= 16 for s in suite.scales):
        raise ZooError(f"{where}: scales must be integers from 1 to 16, got {suite.scales}")
    if suite.precision not in PRECISIONS:
        raise ZooError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got '{suite.precision}'")
    for key in ("steps", "checkpoint_every"):
        if getattr(suite, key) < 1:
            raise ZooError(f"{where}: '{key}' must be at least 1, got {getattr(suite, key)}")
    if suite.val_every < 0:
        raise ZooError(f"{where}: 'val_every' must be at least 0 (0: 20 validations a run), got {suite.val_every}")
    if suite.sample_images < 0:
        raise ZooError(f"{where}: 'sample_images' must be at least 0, got {suite.sample_images}")
    for name, steps in suite.steps_per_model.items():
        if steps < 1:
            raise ZooError(f"{where}: steps_per_model.{name} must be at least 1, got {steps}")
    for key in ("train", "test", "metrics"):
        if not getattr(suite, key):
            raise ZooError(f"{where}: '{key}' must not be empty")


def check_models(suite: Suite, registry) -> None:
    """What needs the registry: every model named by ``overrides`` and ``steps_per_model`` is registered, and
    every override is a field of that model's config with a valid value (at the suite's preset)."""
    where = f"suite '{suite.name}'"
    for table, names in (("overrides", suite.overrides), ("steps_per_model", suite.steps_per_model)):
        for name in names:
            try:
                registry.get(name)
            except ZooError as exc:  # unknown (with did-you-mean), withdrawn or claimed twice
                raise ZooError(f"{where}: [{table}.{name}]: {exc}") from None
    for name in suite.overrides:
        entry = registry.get(name)
        try:
            entry.make_config(*suite.model_config(entry, suite.scales[0]))
        except ZooError as exc:
            raise ZooError(f"{where}: [overrides.{name}]: {exc}") from None


PLACEHOLDER = "${ZOO_DATA}"


def builtin_suites() -> dict[str, Traversable]:
    """``{name: file}`` of the suites shipped with zoo."""
    root = importlib.resources.files("zoo.harness").joinpath("suites")
    return {f.name[: -len(".toml")]: f for f in root.iterdir() if f.name.endswith(".toml")}


def checkout_root() -> Path | None:
    """The source checkout zoo is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "plugins" / "zoo_sr").is_dir():
        return root
    return None


def data_root() -> tuple[Path | None, str]:
    """``$ZOO_DATA`` and where it comes from (for messages); ``(None, why)`` when there is none."""
    env = os.environ.get("ZOO_DATA")
    if env:
        return Path(env).expanduser().resolve(), "ZOO_DATA"
    checkout = checkout_root()
    if checkout is not None:
        return (checkout.parent / "shared" / "data").resolve(), f"../shared/data beside the checkout {checkout}"
    return None, "ZOO_DATA is not set (zoo is installed, not run from a checkout, so it has no default)"


def expand(spec: str) -> str:
    """``spec`` with ``${ZOO_DATA}`` replaced by the data root; unchanged (placeholder kept) when there is none."""
    if PLACEHOLDER not in spec:
        return spec
    root, _ = data_root()
    return spec if root is None else spec.replace(PLACEHOLDER, str(root))


def check_data_root(suite) -> None:
    """A one-line error when the suite still needs ``$ZOO_DATA`` for its training or test data."""
    needed = [p for p in [suite.train, *suite.test, *([suite.val] if suite.val else [])] if PLACEHOLDER in p]
    if not needed:
        return
    _, why = data_root()
    names = ", ".join(p.replace(PLACEHOLDER + "/", "") for p in needed)
    raise ZooError(f"suite '{suite.name}' reads its data under $ZOO_DATA ({names}), but {why}: set ZOO_DATA to "
                   f"the folder that holds them, or give --data and --test")


def describe(name: str, suite) -> dict:
    """What ``zoo suites`` shows about one suite: its data and whether each part is present."""
    parts = [("train", suite.train, True)] + [("validation", suite.val, True)] * bool(suite.val) + \
            [("test", t, True) for t in suite.test] + [("optional test", t, False) for t in suite.optional_test]
    data = [{"role": role, "spec": spec, "present": _present(spec), "required": required}
            for role, spec, required in parts]
    return {"name": name, "description": suite.description, "source": suite.source, "data": data,
            "ready": all(d["present"] for d in data if d["required"])}


def _present(spec: str) -> bool:
    if PLACEHOLDER in spec:
        return False
    if spec.startswith("samples"):
        from zoo.data.datasets import resolve_dataset

        try:
            return len(resolve_dataset(spec)) > 0
        except ZooError:
            return False
    return Path(spec).is_dir()
