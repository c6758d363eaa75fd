"""What a plugin author meets first: a plugin tried without installing it, failures that are one line and
come before any data is read, and the small edges of the listing commands."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from helpers import REPO, make_dist, run_zoo

GOOD = '''
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

import zoo


@dataclass
class Cfg(zoo.SRConfig, zoo.TrainConfig):
    patch_size: int = 12
    batch_size: int = 4


class Net(zoo.SuperResolver):
    def __init__(self, cfg):
        super().__init__(cfg.scale)
        self.conv = nn.Conv2d(3, 3 * cfg.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, rgb):
        out = F.interpolate(rgb, scale_factor=self.scale, mode="bicubic", align_corners=False)
        out = out + self.shuffle(self.conv(rgb))
        return {tail}


class Recipe(zoo.Recipe):
    def start_stage(self, stage):
        self.optimizers["main"] = self.adam(self.model.parameters())

    def training_step(self, batch, stage, step):
        if {explode}:
            raise RuntimeError("the plugin's own bug")
        return {{"l1": self.backward_step(F.l1_loss(self.model(batch["lr"]), batch["hr"]), "main")}}


@zoo.hookimpl
def register_sr_models(register):
    register(zoo.ModelEntry(name="{name}", build=Net, config=Cfg, recipe=Recipe, summary="a path plugin",
                            presets={{"tiny": {{}}}}))
'''


def _plugin(path: Path, name="pathsr", tail="out", explode="False") -> Path:
    path.write_text(GOOD.format(name=name, tail=tail, explode=explode))
    return path


def test_a_plugin_file_or_package_folder_loads_without_installing(tmp_path):
    module = _plugin(tmp_path / "pathsr.py")
    proc = run_zoo("--plugin", str(module), "list", "pathsr", "--json", "--refresh", check=True)
    (row,) = json.loads(proc.stdout)["models"]
    assert row["name"] == "pathsr" and row["distribution"] == "path:pathsr"
    package = tmp_path / "pkgsr"
    package.mkdir()
    _plugin(package / "__init__.py", name="pkgsr")
    proc = run_zoo("check", "pkgsr", "--only", "contract,forward", env={"ZOO_PLUGIN_PATH": str(package)}, check=True)
    assert "0 failed" in proc.stdout
    missing = run_zoo("--plugin", str(tmp_path / "nope.py"), "plugins")
    assert "no such plugin file or folder" in missing.stderr and "Traceback" not in missing.stderr


def test_a_wrong_output_size_stops_zoo_train_before_data_with_the_check_line(tmp_path):
    module = _plugin(tmp_path / "pathsr.py", tail="out[..., 1:, 1:]")
    proc = run_zoo("--plugin", str(module), "train", "--model", "pathsr", "--preset", "tiny", "--steps", "2",
                   "--data", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("zoo: error: model 'pathsr' fails the forward check ('zoo check pathsr'): "
                                   "input (2, 3, 11, 13) gave (2, 3, 21, 25), expected (2, 3, 22, 26)")
    check = run_zoo("--plugin", str(module), "check", "pathsr", "--only", "forward")
    assert "input (2, 3, 11, 13) gave (2, 3, 21, 25), expected (2, 3, 22, 26)" in check.stdout


def test_a_wrong_output_size_fails_only_its_rows_in_a_bench(tmp_path):
    module = _plugin(tmp_path / "pathsr.py", tail="out[..., 1:, 1:]")
    proc = run_zoo("--plugin", str(module), "bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "pathsr",
                   "--out", str(tmp_path / "run"), env={"ZOO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pathsr' fails the forward check" in proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert all(r.get("failed") for r in rows if r["sr"] == "pathsr")
    assert all(r["value"] is not None for r in rows if r["sr"] == "bicubic" and r["metric"] == "psnr")
    assert not list((tmp_path / "cache" / "train").glob("pathsr-*"))  # nothing was trained, no folder made


def test_a_plugin_exception_in_zoo_train_is_one_line_and_a_log(tmp_path):
    module = _plugin(tmp_path / "pathsr.py", explode="True")
    proc = run_zoo("--plugin", str(module), "train", "--model", "pathsr", "--preset", "tiny", "--steps", "2",
                   "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    log = tmp_path / "run" / "errors.log"
    assert re.search(r"zoo: error: training pathsr failed: RuntimeError: the plugin's own bug \(pathsr\.py:\d+\); "
                     r"the traceback is in ", line) and line.endswith(str(log))
    assert "Traceback" in log.read_text() and "the plugin's own bug" in log.read_text()


def test_zoo_plugins_has_a_short_status_and_a_details_view(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-broken", "broken_mod", "raise RuntimeError('x' * 400)\n")
    proc = run_zoo("plugins", pythonpath=[site])
    assert "x" * 20 not in proc.stdout  # the error is in the details view, not in the table
    assert "1 error" in proc.stdout and "'zoo plugins --details' shows them" in proc.stdout
    details = run_zoo("plugins", "--details", pythonpath=[site])
    assert "x" * 400 in details.stdout


def test_a_duplicate_model_name_is_said_once_by_zoo_check(tmp_path):
    site = tmp_path / "site"
    for dist in ("a", "b"):
        make_dist(site, f"zoo-twin-{dist}", f"twin_{dist}", _plugin(tmp_path / f"t{dist}.py", name="twin").read_text())
    proc = run_zoo("check", "twin", pythonpath=[site])
    assert proc.returncode == 2 and proc.stderr.count("registered by more than one plugin distribution") == 1


def test_zoo_eval_help_points_at_every_registered_metric():
    proc = run_zoo("eval", "--help", check=True)
    text = " ".join(proc.stdout.split())
    assert "any registered metric" in text and "'zoo metrics' lists them all" in text
    assert os.path.isfile(REPO / "docs" / "plugins.md")
