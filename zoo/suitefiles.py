"""Where suites and their data are: the built-in suites shipped inside the package, and ``$ZOO_DATA``.

The built-in suites are package data (``zoo/suites/*.toml``) read with :mod:`importlib.resources`, so a
checkout, an editable install and a wheel find the same files. They live inside the ``zoo`` package rather
than under ``benchmark/`` (mapped in with ``package-dir``) because a mapped subpackage is invisible when zoo
is imported from a checkout on ``PYTHONPATH``, and then a second lookup beside the source tree would be
needed; a plain package-data folder is found the same way everywhere.

Data paths in a suite: ``samples...`` (the embedded images), an absolute path, a path relative to the suite
file (user suites), or ``${ZOO_DATA}/...``. ``ZOO_DATA`` is the folder of the standard data sets: the
environment variable when set, else, when zoo runs from a source checkout, ``../shared/data`` beside the
checkout; an installed zoo has no default, and a suite that needs ``$ZOO_DATA`` then says so.
"""

from __future__ import annotations

import importlib.resources
import os
from importlib.resources.abc import Traversable
from pathlib import Path

from zoo.errors import ZooError

PLACEHOLDER = "${ZOO_DATA}"


def builtin_suites() -> dict[str, Traversable]:
    """``{name: file}`` of the suites shipped with zoo."""
    root = importlib.resources.files("zoo").joinpath("suites")
    return {f.name[: -len(".toml")]: f for f in root.iterdir() if f.name.endswith(".toml")}


def checkout_root() -> Path | None:
    """The source checkout zoo is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parent.parent
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
        from zoo.datasets import resolve_dataset

        try:
            return len(resolve_dataset(spec)) > 0
        except ZooError:
            return False
    return Path(spec).is_dir()
