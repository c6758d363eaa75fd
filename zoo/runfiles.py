"""Names of what a bench run writes: model keys, test-set labels, picture folders, file names that work
everywhere."""

from __future__ import annotations

import re
from pathlib import Path


def model_key(name: str, scale: int) -> str:
    """How ``run.json`` names a model trained for one scale (``edsr@x2``): its ``models`` and ``params`` keys."""
    return f"{name}@x{scale}"


def parse_model_key(key: str) -> tuple[str, int]:
    """``(name, scale)`` of a :func:`model_key`."""
    name, _, scale = key.rpartition("@x")
    return name, int(scale)


def test_set_label(test: str) -> str:
    """How a test set is named on the boards: the embedded set by its name, a folder by its last part."""
    return test if test.startswith("samples") else Path(test).name


def safe_name(text: str) -> str:
    """``text`` as a file or folder name that works everywhere (Windows forbids ``<>:"/\\|?*``)."""
    return re.sub(r'[<>:"/\\|?*\s]+', "-", text).strip("-.") or "_"


def sample_dir(stage: str, order: str, colorizer: str | None, sr: str | None, test_set: str, scale: int) -> Path:
    """Where a row's pictures go, relative to the run folder."""
    name = "__".join(x for x in (stage, order, colorizer, sr) if x)
    return Path("samples") / f"x{scale}" / safe_name(test_set) / name
