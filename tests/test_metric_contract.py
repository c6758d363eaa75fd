"""The metric contract: checked at registration and by `zoo check --metrics`; at evaluation time a broken
metric fails only its own column, with a reason naming it."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.data.datasets import resolve_dataset
from zoo.errors import PluginWarning, ZooError
from zoo.harness.conformance import format_results
from zoo.harness.evaluate import evaluate, load_model
from zoo.harness.metric_conformance import check_metrics
from zoo.metrics.module import MetricModule
from zoo.plugins.registry import load_registry

CPU = torch.device("cpu")


class _Mae(zoo.Metric):
    """A working metric: mean absolute error in 8-bit levels."""

    def __init__(self, name="mae", *, levels: float = 255.0, returns: str = "result", raises: str = ""):
        self.info = zoo.MetricInfo(name, higher_is_better=False, unit="levels", convention="RGB")
        self.levels, self.returns, self.raises = levels, returns, raises
        self.values = []

    def update(self, pred, target):
        if self.raises == "update":
            raise RuntimeError("boom in update")
        self.values.append(float((pred - target).abs().mean()) * self.levels)

    def compute(self):
        value = sum(self.values) / len(self.values)
        if self.returns == "float":
            return value
        return zoo.MetricResult(self.info, value, n=len(self.values))


class _Plugin:
    @zoo.hookimpl
    def register_metrics(self, register):
        def entry(name, build):
            return zoo.MetricEntry(name=name, build=build, higher_is_better=False, unit="levels", summary=name)

        register(entry("mae", lambda *, levels=255.0, **params: _Mae("mae", levels=levels)))
        register(entry("returns_float", lambda **params: _Mae("returns_float", returns="float")))
        register(entry("raises_in_update", lambda **params: _Mae("raises_in_update", raises="update")))
        register(entry("no_params", lambda: _Mae("no_params")))  # cannot take shave, device, cache_dir
        register(zoo.MetricEntry(name="undeclared", build=lambda **p: _Mae("undeclared"), higher_is_better="yes",
                                 unit=None, summary="direction and unit not declared"))


@pytest.fixture(scope="module")
def registry():
    with pytest.warns(PluginWarning):
        return load_registry(plugins=[("broken-metrics", _Plugin())])


def test_a_build_without_params_and_an_undeclared_direction_are_refused_at_registration(registry):
    assert "no_params" not in registry.metric_names() and "undeclared" not in registry.metric_names()
    assert ("build() must accept the settings the evaluation passes every metric (shave, device, cache_dir): "
            "end its signature with **params") in registry.invalid["no_params"]
    why = registry.invalid["undeclared"]
    assert "higher_is_better must be True or False" in why and "unit must be a string" in why
    assert "everything else works" in why


def test_unknown_settings_are_refused_for_a_plugin_metric_as_for_a_core_one(registry):
    with pytest.raises(ZooError, match=r"metric 'mae' has no setting 'bogus' \(settings: cache_dir, device, "
                                       r"levels, shave\)"):
        MetricModule("mae", registry=registry, bogus=1)
    with pytest.raises(ZooError, match="metric 'returns_float' has no setting 'bogus'"):
        MetricModule("returns_float", registry=registry, bogus=1)  # only **params: the common settings alone
    with pytest.raises(ZooError, match="metric 'psnr' has no setting 'bogus'"):
        MetricModule("psnr", registry=registry, bogus=1)
    assert MetricModule("mae", registry=registry, levels=1.0, shave=2).name == "mae"


def test_a_broken_metric_fails_only_its_own_column(registry):
    sr = load_model("bicubic", "sr", scale=2, device=CPU, registry=registry)
    report = evaluate(dataset=resolve_dataset("samples:test"), scale=2, device=CPU, sr=sr, registry=registry,
                      metrics=["psnr", "returns_float", "raises_in_update", "mae", "ssim"])
    by_name = {r.info.name: r for r in report.results}
    assert by_name["psnr"].available and by_name["ssim"].available and by_name["mae"].available
    assert by_name["returns_float"].failed == ("metric 'returns_float' from 'broken-metrics': compute() returned "
                                               "float, not a zoo.MetricResult (with its info)")
    assert by_name["raises_in_update"].failed.startswith(
        "metric 'raises_in_update' from 'broken-metrics': update() raised: RuntimeError: boom in update")
    row = by_name["returns_float"].to_dict()
    assert row["value"] is None and row["failed"] and row["higher_is_better"] is False and row["unit"] == "levels"


def test_zoo_check_metrics_passes_a_good_metric_and_names_what_is_broken(registry):
    results = check_metrics(["mae", "returns_float", "raises_in_update", "no_params"], registry=registry)
    status = {(r.model, r.check): r for r in results}
    assert all(status[("mae", c)].status == "pass" for c in ("contract", "build", "compute", "settings"))
    assert status[("returns_float", "compute")].status == "fail"
    assert "compute() returned float" in status[("returns_float", "compute")].detail
    assert status[("raises_in_update", "compute")].status == "fail"
    assert "boom in update" in status[("raises_in_update", "compute")].detail
    assert status[("no_params", "contract")].status == "fail"
    table = format_results(results, "metrics")
    assert "4 metrics" in table and "FAIL" in table


def test_a_failed_metric_is_its_own_failed_cell_on_the_board(registry):
    from zoo.boards.leaderboard import render_markdown

    sr = load_model("bicubic", "sr", scale=2, device=CPU, registry=registry)
    report = evaluate(dataset=resolve_dataset("samples:test"), scale=2, device=CPU, sr=sr, registry=registry,
                      metrics=["psnr", "returns_float"])
    base = {"stage": "sr", "order": "", "test_set": "samples:test", "scale": 2, "colorizer": None, "sr": "bicubic",
            "n_images": report.n_images, "images_per_second": 1.0, "skipped": []}
    rows = [{**base, **r.to_dict()} for r in report.results]
    board = render_markdown([({"suite": {"name": "t"}, "params": {}, "models": {}}, rows)])
    line = next(line for line in board.splitlines() if line.startswith("| bicubic"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "**31.59**" and cells[2] == "failed [1]"  # psnr stands, the broken column fails
    assert "failed: metric 'returns_float' from 'broken-metrics': compute() returned float" in board


def test_an_evaluation_with_a_failed_metric_is_not_cached_so_a_rerun_computes_it(registry, tmp_path, monkeypatch):
    from zoo.harness import jobs

    monkeypatch.setattr(jobs, "get_registry", lambda: registry)  # the job hands it to the evaluation

    def run(metrics, key):
        job = jobs.EvalJob("sr", "", "samples:test", 2, metrics, sr=jobs.ModelRef("bicubic"), key=key, device="cpu")
        return jobs.run_eval_job(job, cache=tmp_path, device=CPU)

    rows = run(["psnr", "returns_float"], "broken")
    assert any(r.get("failed") for r in rows) and not (tmp_path / "eval" / "broken.json").exists()
    rows = run(["psnr", "mae"], "fine")
    assert not any(r.get("failed") for r in rows) and (tmp_path / "eval" / "fine.json").is_file()
