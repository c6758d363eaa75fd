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


def test_bench_jobs_and_executors_are_layered_even_through_function_level_imports():
    # jobs <- failures <- executors <- bench: neither executors nor the jobs reach back into the bench
    script = _script()
    in_cycles = {m for c in script.cycles(script.import_graph(REPO, nested=True)) for m in c}
    assert not in_cycles & {"zoo.api", "zoo.harness.bench", "zoo.harness.executors", "zoo.harness.failures",
                            "zoo.harness.jobs", "zoo.training.loop"}


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
