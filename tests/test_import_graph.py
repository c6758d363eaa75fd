"""zoo's modules import each other without a circle (benchmark/scripts/import_cycles.py reads the source)."""

from __future__ import annotations

import importlib.util

from helpers import REPO


def _script():
    spec = importlib.util.spec_from_file_location("import_cycles", REPO / "benchmark" / "scripts" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_among_module_level_imports():
    script = _script()
    graph = script.import_graph(REPO)
    assert "zoo.harness.jobs" in graph and "zoo.cli.bench" in graph  # the graph covers the subpackages
    assert script.cycles(graph) == []


def test_no_cycle_at_any_level_function_level_imports_included():
    script = _script()
    assert script.cycles(script.import_graph(REPO, nested=True)) == []


def test_the_subpackages_are_layered():
    # runtime, plugins < data < store < metrics, training < boards < harness < cli, api: never back up
    script = _script()
    packages = script.package_graph(script.import_graph(REPO, nested=True))
    assert script.cycles(packages) == []
    assert packages["zoo.plugins"] == set()  # the plugin interfaces and registry stand on zoo.errors alone
    assert packages["zoo.runtime"] == set()


def test_function_level_imports_of_zoo_modules_say_why():
    # Allowed only where they keep the CLI fast (`zoo --help` without torch), and then said once per module.
    script = _script()
    silent = [name for name, path in script.module_names(REPO).items()
              if _function_level_zoo_imports(path) and "# Function-level imports:" not in path.read_text()]
    assert silent == []


def _function_level_zoo_imports(path) -> int:
    import ast

    count = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("zoo"):
                    count += 1
                elif isinstance(inner, ast.Import) and any(a.name.startswith("zoo") for a in inner.names):
                    count += 1
    return count


def test_the_script_finds_a_cycle(tmp_path):
    script = _script()
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "__init__.py").write_text("")
    (tmp_path / "zoo" / "a.py").write_text("from zoo import b\n")
    (tmp_path / "zoo" / "b.py").write_text("import zoo.c\n")
    (tmp_path / "zoo" / "c.py").write_text("from . import a\n\ndef f():\n    import zoo.b\n")
    (tmp_path / "zoo" / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.a\n")
    assert script.cycles(script.import_graph(tmp_path)) == [["zoo.a", "zoo.b", "zoo.c"]]
    assert script.import_graph(tmp_path)["zoo.d"] == set()
    (tmp_path / "zoo" / "c.py").write_text("def f():\n    from zoo import a\n")
    assert script.cycles(script.import_graph(tmp_path)) == []
    assert script.cycles(script.import_graph(tmp_path, nested=True)) == [["zoo.a", "zoo.b", "zoo.c"]]


def test_the_script_counts_the_package_a_module_import_runs(tmp_path):
    # zoo.p.x imports zoo.q.y, whose package zoo.q imports zoo.p.x back: a circle through zoo/q/__init__.py
    script = _script()
    for folder in ("zoo", "zoo/p", "zoo/q"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "zoo" / "p" / "x.py").write_text("from zoo.q import y\n")
    (tmp_path / "zoo" / "q" / "y.py").write_text("")
    assert script.cycles(script.import_graph(tmp_path)) == []
    (tmp_path / "zoo" / "q" / "__init__.py").write_text("from zoo.p.x import *\n")
    assert script.cycles(script.import_graph(tmp_path)) == [["zoo.p.x", "zoo.q"]]
    # a module's own package is not an edge: it is being imported already
    (tmp_path / "zoo" / "q" / "__init__.py").write_text("from zoo.q import y\n")
    assert script.cycles(script.import_graph(tmp_path)) == []
