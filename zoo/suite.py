"""Benchmark suites: TOML files naming data, scale, presets, overrides, steps and metrics.

A suite is a built-in one by name (``zoo/suites/``, package data: see :mod:`zoo.suitefiles`) or a TOML file
given by path. Data paths: relative ones are relative to the suite file; ``${ZOO_DATA}/...`` is under the data
root (:func:`zoo.suitefiles.data_root`).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

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

    def replace(self, **changes) -> "Suite":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def available_suites() -> list[str]:
    from zoo.suitefiles import builtin_suites

    return sorted(builtin_suites())


def find_suite(spec: str):
    """A user suite's path, or a built-in suite's file (an importlib.resources Traversable)."""
    from zoo.suitefiles import builtin_suites

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
    path = find_suite(spec)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"suite {path} is not valid TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(Suite)}
    unknown = set(raw) - known
    if unknown:
        raise ZooError(f"suite {path}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    if "scale" in raw:
        raise ZooError(f"suite {path}: use 'scales = [2]', a list")
    name = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    suite = Suite(**{**raw, "name": raw.get("name", name), "source": str(path)})
    base = Path(str(path)).parent
    suite.train = _resolve(suite.train, base)
    suite.test = [_resolve(t, base) for t in suite.test]
    suite.optional_test = [_resolve(t, base) for t in suite.optional_test]
    validate(suite)
    return suite


def _resolve(spec: str, base: Path) -> str:
    from zoo.suitefiles import PLACEHOLDER, expand

    if spec.startswith("samples"):
        return spec
    spec = expand(spec)
    if PLACEHOLDER in spec:  # no data root here: kept, and named when the bench needs it
        return spec
    p = Path(spec).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def validate(suite: Suite) -> None:
    if suite.order not in ORDERS:
        raise ZooError(f"suite '{suite.name}': order must be one of {', '.join(ORDERS)}, got '{suite.order}'")
    if not suite.scales or any(int(s) != s or s < 1 for s in suite.scales):
        raise ZooError(f"suite '{suite.name}': scales must be positive integers, got {suite.scales}")
    from zoo.training import PRECISIONS

    if suite.precision not in PRECISIONS:
        raise ZooError(f"suite '{suite.name}': precision must be one of {', '.join(PRECISIONS)}, "
                       f"got '{suite.precision}'")
    if suite.steps < 1:
        raise ZooError(f"suite '{suite.name}': steps must be at least 1")
