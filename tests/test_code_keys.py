"""A plugin author's edit-run loop: the code is part of every cache key, so an edited model is retrained.

The plugin is a real installed distribution (a module and its dist-info on PYTHONPATH) and every bench is the
real CLI in a fresh process, as an author runs it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.plugins.codehash import code_hash, source_files
from zoo.plugins.registry import get_registry

from helpers import REPO, make_dist, run_zoo

PLUGIN = '''
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from {helper} import SHIFT


@dataclass
class Cfg(zoo.SRConfig, zoo.TrainConfig):
    patch_size: int = 12
    batch_size: int = 4
    lr: float = 1e-3


class Net(zoo.SuperResolver):
    def __init__(self, cfg):
        super().__init__(cfg.scale)
        self.conv = nn.Conv2d(3, 3 * cfg.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, rgb):
        base = F.interpolate(rgb, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.shuffle(self.conv(rgb)) + {offset} + SHIFT


class Recipe(zoo.Recipe):
    stages = (zoo.Stage("main"),)

    def start_stage(self, stage):
        self.optimizers["main"] = self.adam(self.model.parameters())

    def training_step(self, batch, stage, step):
        loss = F.l1_loss(self.model(batch["lr"]), batch["hr"])
        return {{"l1": self.backward_step(loss, "main")}}


@zoo.hookimpl
def register_sr_models(register):
    register(zoo.ModelEntry(name="edited", build=Net, config=Cfg, summary="an SR plugin being edited",
                            presets={{"tiny": {{}}}}, recipe=Recipe))
'''

SUITE = '''train = "samples:train"
test = ["samples:test"]
metrics = ["psnr"]
sample_images = 0
preset = "tiny"
steps = 3
colorizers = []
sr = ["edited"]
'''


def _install(site: Path, offset: str, shift: str = "0.0") -> None:
    """The plugin as a package: its module, and a helper module of the package that the module imports."""
    make_dist(site, "zoo-edited", "edited_plugin", "", entry_point="edited")
    (site / "edited_plugin.py").unlink()
    package = site / "edited_plugin"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(PLUGIN.format(offset=offset, helper="edited_plugin.helper"))
    (package / "helper.py").write_text(f"SHIFT = {shift}\n")


def _bench(site: Path, suite: Path, cache: Path, out: Path, *extra: str):
    proc = run_zoo("bench", "--suite", str(suite), "--threads", "1", "--cache", str(cache), "--out", str(out),
                   *extra, pythonpath=[site], env={"ZOO_PLUGINS": "zoo,zoo-edited"}, check=True)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    psnr = next(r["value"] for r in rows if r["sr"] == "edited" and r["metric"] == "psnr")
    trained = int(re.search(r"(\d+) of \d+ models trained now", proc.stdout).group(1))
    return proc.stdout, trained, psnr


@pytest.mark.slow
def test_an_edited_plugin_is_retrained_with_a_message_and_scores_as_a_fresh_cache(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    _install(site, "0.0")
    said, trained, first = _bench(site, suite, cache, tmp_path / "a")
    assert trained == 1 and "code changed" not in said
    said, trained, again = _bench(site, suite, cache, tmp_path / "b")
    assert trained == 0 and again == first and "code changed" not in said  # nothing edited: nothing retrained

    _install(site, "0.25")  # the author edits forward() and keeps the version
    dry = run_zoo("bench", "--suite", str(suite), "--cache", str(cache), "--dry-run", pythonpath=[site],
                  env={"ZOO_PLUGINS": "zoo,zoo-edited"}, check=True)
    assert "edited: code changed since the cached run, retraining" in dry.stdout  # the dry run says so too
    said, trained, edited = _bench(site, suite, cache, tmp_path / "c")
    assert "edited: code changed since the cached run, retraining" in said
    assert trained == 1 and edited != first
    _, _, fresh = _bench(site, suite, tmp_path / "fresh-cache", tmp_path / "d")
    assert edited == fresh  # the numbers after the edit are the edited code's

    _install(site, "0.25", shift="0.125")  # a helper module the plugin imports is part of its code too
    said, trained, helper_edit = _bench(site, suite, cache, tmp_path / "e")
    assert "edited: code changed since the cached run, retraining" in said and trained == 1
    assert helper_edit != edited

    said, trained, forced = _bench(site, suite, cache, tmp_path / "f", "--retrain", "edited")
    assert "edited: retraining (--retrain)" in said and trained == 1 and forced == helper_edit
    refused = run_zoo("bench", "--suite", str(suite), "--cache", str(cache), "--out", str(tmp_path / "g"),
                      "--retrain", "edsr", pythonpath=[site], env={"ZOO_PLUGINS": "zoo,zoo-edited"})
    assert refused.returncode == 2 and "--retrain edsr: not a model this bench trains" in refused.stderr


def test_the_code_hash_covers_the_defining_modules_and_what_they_import_in_their_package():
    registry = get_registry()
    files = {name: sorted({n for obj in (e.build, e.config, e.recipe) if obj for n, _ in source_files(obj)})
             for name, e in ((n, registry.get(n)) for n in ("edsr", "edsr_dqe", "srgan", "bicubic", "zhang"))}
    assert files == {"edsr": ["zoo_sr/edsr.py"], "edsr_dqe": ["zoo_sr/edsr.py", "zoo_sr/edsr_dqe.py"],
                     "srgan": ["zoo_sr/edsr.py", "zoo_sr/srgan.py"], "bicubic": ["zoo_sr/bicubic.py"],
                     "zhang": ["zoo_colorizers/zhang.py"]}
    import zoo

    assert source_files(zoo.TrainConfig) == []  # the core is versioned by its formats, not hashed
    assert code_hash(registry.get("edsr").build) != code_hash(registry.get("srgan").build)


def test_the_code_is_in_the_training_and_evaluation_keys(tmp_path, monkeypatch):
    from zoo.harness import bench
    from zoo.harness.suite import load_suite
    from zoo.training import settings

    suite = load_suite("smoke")
    plan = bench.plan_bench(suite, registry=get_registry(), run_dir=tmp_path / "r", cache=tmp_path / "c")
    monkeypatch.setattr(settings, "entry_code_hash", lambda entry: "edited")
    monkeypatch.setattr(bench, "entry_code_hash", lambda entry: "edited")
    edited = bench.plan_bench(suite, registry=get_registry(), run_dir=tmp_path / "r", cache=tmp_path / "c")
    assert all(a.key != b.key and a.lineage == b.lineage for a, b in zip(plan.train_jobs, edited.train_jobs))
    assert not {j.key for j in plan.eval_jobs} & {j.key for j in edited.eval_jobs}  # baselines' too


@pytest.mark.slow
def test_the_walkthrough_of_docs_plugins_tells_the_truth():
    # FSRCNN and a metric written from docs/plugins.md alone, checked, benched, edited, benched again
    proc = subprocess.run([sys.executable, str(REPO / "benchmark" / "scripts" / "plugin_walkthrough.py")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the edit-run loop told the truth" in proc.stdout
