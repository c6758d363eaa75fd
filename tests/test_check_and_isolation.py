"""`zoo check` (zoo.harness.conformance, the pytest fixture), a bench that survives a broken model, and the README's
plugin walkthrough run verbatim against a pip-installed copy of the example plugin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import zoo
from zoo.harness.conformance import check_model, format_results
from zoo.plugins.registry import get_registry

from helpers import REPO, make_dist, run_zoo, tiny_sr_parts


@pytest.fixture(scope="module")
def example_registry():
    sys.path.insert(0, str(REPO / "plugins" / "example_plugin"))
    try:
        import zoo_example
    finally:
        sys.path.pop(0)
    return zoo.load_registry(plugins=[("zoo_example", zoo_example)])


@pytest.mark.parametrize("name", sorted(get_registry().names()) + ["espcn"])
def test_every_builtin_model_and_the_example_pass_zoo_check(zoo_check, example_registry, name):
    # zoo_check is the fixture of zoo's pytest plugin (entry point pytest11), as a plugin author uses it.
    zoo_check(name, registry=example_registry)


# -- models that break one rule each --------------------------------------------------------------------
Cfg, Base, Learns = tiny_sr_parts()


class Raises(Base):
    def forward(self, rgb):
        raise RuntimeError("forward exploded")


class WrongShape(Base):
    def forward(self, rgb):
        return super().forward(rgb)[..., :-1]


class Unseeded(Base):
    def __init__(self, cfg):
        super().__init__(cfg)
        with torch.no_grad():  # a private generator, not seeded by the loop
            seed = int.from_bytes(os.urandom(4), "little")
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=torch.Generator().manual_seed(seed)))


class UnsavedState(Base):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.register_buffer("gain", torch.ones(1), persistent=False)  # changes in training, never saved

    def forward(self, rgb):
        if self.training:
            self.gain += 1
        return super().forward(rgb) * self.gain


class NeverSteps(Learns):
    def training_step(self, batch, stage, step):
        return {"l1": 0.5}


class ValidationTouchesWeights(Learns):
    def validation_losses(self, batch, stage):
        for p in self.model.parameters():
            p.add_(0.01)  # a held-out pass must never move the weights
        return {"l1": (self.model(batch["lr"]) - 0).abs().mean()}


class ValidationNaN(Learns):
    def validation_losses(self, batch, stage):
        return {"l1": torch.tensor(float("nan"))}


def _registered(build, recipe=Learns):
    """A registry holding the one model (registered through a hook, as a plugin does), and its entry."""
    name = build.__name__.lower()
    plugin = types.ModuleType(f"plugin_{name}")
    plugin.register_sr_models = zoo.hookimpl(lambda register: register(zoo.ModelEntry(
        name=name, build=build, config=Cfg, summary="test", recipe=recipe, presets={"tiny": {}})))
    registry = zoo.load_registry(entry_points=False, plugins=[(plugin.__name__, plugin)])
    return registry, registry.get(name)


@pytest.mark.parametrize("build, recipe, failing, says", [
    (Raises, Learns, {"forward", "train", "save_load", "seeded"}, "forward exploded"),
    (WrongShape, Learns, {"forward", "train", "seeded"}, "expected (2, 3, 22, 26)"),
    (Unseeded, Learns, {"seeded"}, "two runs with seed 0 (one of them validating) differ"),
    (UnsavedState, Learns, {"save_load"}, "outputs differ after save -> load"),
    (Base, NeverSteps, {"train"}, "training changed no weight"),
    (Base, ValidationTouchesWeights, {"seeded"}, "one of them validating"),
    (Base, ValidationNaN, {"train"}, "non-finite held-out loss l1=nan"),
])
def test_zoo_check_fails_what_is_broken_and_passes_the_rest(build, recipe, failing, says):
    registry, entry = _registered(build, recipe)
    results = check_model(entry, registry=registry)
    failed = {r.check for r in results if r.status == "fail"}
    assert failing <= failed, format_results(results)
    # Checks that do not depend on the defect pass (no check fails by accident).
    assert {"contract", "presets", "params"}.isdisjoint(failed), format_results(results)
    assert says in format_results(results)


def test_a_good_model_passes_and_the_table_says_so():
    registry, entry = _registered(Base)
    results = check_model(entry, registry=registry)
    assert {r.status for r in results} == {"pass"}, format_results(results)
    assert "0 failed" in format_results(results)


BROKEN_DIST = '''
from dataclasses import dataclass
import torch
import zoo


@dataclass
class Cfg(zoo.SRConfig, zoo.TrainConfig):
    batch_size: int = 2
    patch_size: int = 8


class Net(zoo.SuperResolver):
    def __init__(self, cfg):
        super().__init__(cfg.scale)
        self.conv = torch.nn.Conv2d(3, 3 * cfg.scale**2, 3, padding=1)
        self.up = torch.nn.PixelShuffle(cfg.scale)

    def forward(self, rgb):
        return self.up(self.conv(rgb))


class Explodes(Net):
    def forward(self, rgb):
        if BROKEN:
            raise RuntimeError("forward exploded")
        return super().forward(rgb)


class EvalBreaks(Net):
    def forward(self, rgb):
        if BROKEN and not self.training and rgb.shape[-1] > 32:  # whole test images, not the forward check's
            raise RuntimeError("eval exploded")
        return super().forward(rgb)


class Recipe(zoo.Recipe):
    def start_stage(self, stage):
        self.optimizers["main"] = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def training_step(self, batch, stage, step):
        return {{"l1": self.backward_step((self.model(batch["lr"]) - batch["hr"]).abs().mean(), "main")}}


BROKEN = {broken}


@zoo.hookimpl
def register_sr_models(register):
    for name, build in (("explodes", Explodes), ("evalbreaks", EvalBreaks)):
        register(zoo.ModelEntry(name=name, build=build, config=Cfg, summary="broken on purpose", recipe=Recipe))
'''


def test_bench_survives_a_broken_model_and_a_rerun_after_the_fix_does_only_what_failed(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-broken-models", "broken_models", BROKEN_DIST.format(broken=True))
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    args = ("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "edsr,explodes,evalbreaks")
    proc = run_zoo(*args, "--out", str(tmp_path / "run1"), pythonpath=[site], env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "explodes" in proc.stderr and "forward exploded" in proc.stderr and "errors.log" in proc.stderr
    board = (tmp_path / "run1" / "leaderboard.md").read_text()
    rows = {line.split("|")[2].strip(): line for line in board.splitlines()
            if line.startswith("| gray") and line.count("|") > 4}
    assert "failed [" in rows["explodes"] and "failed [" in rows["evalbreaks"]
    assert "failed" not in rows["edsr"] and "failed" not in rows["bicubic"]
    # the forward check runs before any data is read, with zoo check's words
    assert ("explodes failed to train: model 'explodes' fails the forward check ('zoo check explodes'): "
            "RuntimeError: forward exploded") in board
    assert "evaluation failed: RuntimeError: eval exploded" in board
    results = [json.loads(line) for line in (tmp_path / "run1" / "results.jsonl").read_text().splitlines()]
    assert all(r["value"] is not None for r in results if r["sr"] == "edsr" and r["metric"] == "psnr")
    log = (tmp_path / "run1" / "errors.log").read_text()
    assert "Traceback" in log and "forward exploded" in log and "eval exploded" in log

    make_dist(site, "zoo-broken-models", "broken_models", BROKEN_DIST.format(broken=False))  # the fix
    proc = run_zoo(*args, "--out", str(tmp_path / "run2"), pythonpath=[site], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "trained explodes" in proc.stdout
    assert "cached  edsr" in proc.stdout  # trained before the fix, and another plugin's code
    # the fix edited the module evalbreaks is defined in too: its cached run is of the old code
    assert "evalbreaks: code changed since the cached run, retraining" in proc.stdout
    assert "explodes: code changed" not in proc.stdout  # it never finished a run: nothing cached to replace
    assert "failed" not in (tmp_path / "run2" / "leaderboard.md").read_text()


def test_zoo_check_cli_exits_1_with_a_table_for_broken_models(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-broken-models", "broken_models", BROKEN_DIST.format(broken=True))
    proc = run_zoo("check", "explodes", "--json", pythonpath=[site])
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    status = {r["check"]: r["status"] for r in report["results"]}
    assert status["forward"] == "fail" and status["contract"] == "pass"
    proc = run_zoo("check", "explodes", pythonpath=[site])
    assert proc.returncode == 1 and "FAIL" in proc.stdout and "forward exploded" in proc.stdout


def _install_example_copy(tmp_path: Path) -> Path:
    """The README's `pip install ./plugins/example_plugin`, from a copy, into a throwaway target."""
    source = tmp_path / "example_plugin"
    shutil.copytree(REPO / "plugins" / "example_plugin", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    return target


def test_readme_plugin_walkthrough_works_verbatim(tmp_path):
    site = _install_example_copy(tmp_path)
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    listed = run_zoo("list", "--json", pythonpath=[site], env=env, check=True)
    assert any(m["name"] == "espcn" for m in json.loads(listed.stdout)["models"])
    proc = run_zoo("check", "espcn", pythonpath=[site], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout
    out = tmp_path / "run"
    proc = run_zoo("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "espcn", "--out", str(out),
                   pythonpath=[site], env=env)
    assert proc.returncode == 0, proc.stderr
    board = (out / "leaderboard.md").read_text()
    espcn = [line for line in board.splitlines() if line.startswith("| espcn")]
    assert espcn and all("n/a" not in line.split("|")[2] for line in espcn)  # a PSNR number, ranked
    proc = run_zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--metrics", "psnr,mae", "--json",
                   pythonpath=[site], env=env, check=True)
    mae = next(m for m in json.loads(proc.stdout)["metrics"] if m["metric"] == "mae")
    assert mae["value"] > 0 and mae["unit"] == "levels" and mae["higher_is_better"] is False
