"""The plugin author's namespace: every name ``zoo`` exports resolves, and the plugins in this repository (the
built-in ones and the example third-party plugin) use ``zoo`` only through it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PLUGIN_FILES = sorted(p for pkg in ("zoo_colorizers", "zoo_sr", "example_plugin/zoo_example")
                      for p in (PLUGINS / pkg).glob("*.py"))

# (module, name) a built-in plugin may import from a zoo submodule, and why it is not part of the contract.
ALLOWED = {
    ("zoo.store.checkpoint", "read_meta"): "edsr_dqe checks an edsr checkpoint's sidecar against its own config before "
                                     "reading the tensors: a checkpoint-format detail that third-party plugins "
                                     "reach through zoo.load / zoo.create_model(checkpoint=...)",
}


@pytest.mark.parametrize("name", zoo.__all__)
def test_every_exported_name_resolves(name):
    value = getattr(zoo, name)
    if name != "__version__":
        assert name in dir(zoo)
        module = importlib.import_module(zoo._EXPORTS[name])
        assert value is (module if zoo._EXPORTS[name] == f"zoo.{name}" else getattr(module, name))


def test_the_exports_stay_lazy():
    # Listing the namespace imports nothing heavy; the toolkit names import their module on first use.
    code = ("import sys, zoo; dir(zoo); zoo.__all__; zoo.bounded, zoo.ZooError, zoo.hookimpl; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "False\n"


def _uses_of_zoo(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every name the file takes from zoo: ``from zoo[.x] import name``,
    ``import zoo.x`` and attribute chains ``zoo.name[.attr]`` (the first attribute only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
            uses += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            uses += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("zoo.")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "zoo":
            uses.append(("zoo", node.attr, node.lineno))
    return uses


def test_plugins_import_only_what_zoo_exports():
    assert len(PLUGIN_FILES) >= 12  # both built-in packages and the example plugin were found
    wrong = []
    for path in PLUGIN_FILES:
        for module, name, line in _uses_of_zoo(path):
            if module == "zoo" and name in zoo.__all__ or (module, name) in ALLOWED:
                continue
            what = f"{module}.{name}" if name else module
            wrong.append(f"{path.relative_to(PLUGINS)}:{line}: {what} (not exported by zoo)")
    assert not wrong, "\n".join(wrong)


def test_the_allowlist_is_still_needed():
    used = {(m, n) for p in PLUGIN_FILES for m, n, _ in _uses_of_zoo(p)}
    assert set(ALLOWED) <= used, set(ALLOWED) - used
