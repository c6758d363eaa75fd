"""benchmark/scripts/colorizer_loss_reference.py: the replayed batch stream is the one the run trained on, and
its references are the losses a colour-blind model would have logged."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

import pytest
import torch

import zoo
from zoo.data.color import split_lab
from zoo.data.datasets import resolve_dataset
from zoo.plugins.recipe import Recipe, Stage, TrainContext
from zoo.store.runs import read_log
from zoo.training.loop import train

from helpers import REPO

AB_SCALE = 110.0


def _script():
    path = REPO / "benchmark" / "scripts" / "colorizer_loss_reference.py"
    spec = importlib.util.spec_from_file_location("colorizer_loss_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class GrayConfig:
    batch_size: int = 3
    patch_size: int = 24
    lr: float = 1e-3


class GrayNet(zoo.Colorizer):
    """Predicts ab = 0 whatever it sees; its one weight only gives the optimiser something to step."""

    def __init__(self, cfg):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, l):
        return torch.zeros(l.shape[0], 2, *l.shape[2:]) + 0 * self.unused


class GrayRecipe(Recipe):
    stages = (Stage("main"),)

    def start_stage(self, stage):
        self.optimizers["g"] = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)

    def l1(self, batch):
        return (self.model(batch["l"]) - batch["ab"] / AB_SCALE).abs().mean()

    def training_step(self, batch, stage, step):
        return {"l1": self.backward_step(self.l1(batch), "g")}

    def validation_losses(self, batch, stage):
        return {"l1": self.l1(batch)}


ENTRY = zoo.ModelEntry(name="graynet", build=GrayNet, config=GrayConfig, summary="test", recipe=GrayRecipe)


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    import types

    plugin = types.ModuleType("gray_plugin")
    plugin.register_colorizers = zoo.hookimpl(lambda register: register(ENTRY))
    entry = zoo.load_registry(entry_points=False, plugins=[("gray_plugin", plugin)]).get("graynet")
    out = tmp_path_factory.mktemp("runs") / "graynet"
    # one loader process while training, none in the replay: the stream must not depend on it
    train(entry, entry.make_config(), resolve_dataset("samples:train"), steps=20, out_dir=out,
          device=torch.device("cpu"), seed=11, data_scale=2, checkpoint_every=10, workers=1, progress=False)
    return out


def test_replayed_gray_reference_equals_what_a_gray_model_logged(gray_run):
    script = _script()
    logged = [row["l1"] for row in read_log(gray_run)]
    ref = script.reference_losses(gray_run, "l1", "samples:train")
    assert len(ref) == len(logged) == 20
    assert ref == pytest.approx(logged, rel=1e-5)
    assert len(set(round(v, 4) for v in ref)) > 10  # the batches differ, so matching them means the same stream


def test_the_report_and_its_refusals(gray_run, capsys):
    script = _script()
    assert script.main([str(gray_run), "--data", "samples:train"]) == 0
    out = capsys.readouterr().out
    assert "ratio 1.000 -> 1.000" in out and len([r for r in out.splitlines() if r[:5].strip().isdigit()]) == 10
    # a bench's cached run does not name its data; other data than the run's is refused
    assert script.main([str(gray_run)]) == 2
    assert "pass --data" in capsys.readouterr().err
    assert script.main([str(gray_run), "--data", "samples:test"]) == 2
    assert "fingerprint differs" in capsys.readouterr().err
    assert script.main([str(gray_run.parent)]) == 2
    assert "not a training folder" in capsys.readouterr().err


def test_the_held_out_reference_is_computed_on_the_crops_the_run_validated_on(tmp_path, capsys):
    import types

    plugin = types.ModuleType("gray_plugin_val")
    plugin.register_colorizers = zoo.hookimpl(lambda register: register(ENTRY))
    entry = zoo.load_registry(entry_points=False, plugins=[("gray_plugin_val", plugin)]).get("graynet")
    out = tmp_path / "graynet"
    train(entry, entry.make_config(), resolve_dataset("samples:train"), steps=20, out_dir=out,
          device=torch.device("cpu"), seed=11, data_scale=2, checkpoint_every=10, workers=0, progress=False,
          val="samples:test", val_every=2)
    script = _script()
    assert script.main([str(out), "--data", "samples:train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    held_out = [ln for ln in lines if ln.strip().startswith("step ")]
    assert len(held_out) == 10 and all(ln.endswith("ratio 1.000") for ln in held_out)  # gray scores as gray
    assert any(ln.startswith("held-out fall first->last tenth:") and ln.endswith(" 0.0 %") for ln in lines)
    assert script.main([str(out), "--data", "samples:train", "--val", "samples:train"]) == 0
    assert "fingerprint differs" in capsys.readouterr().err  # other held-out images: said, no reference


def test_zhang_reference_is_the_recipe_loss_of_a_model_that_predicts_the_prior():
    from skimage import data

    entry = zoo.get_registry().get("zhang")
    cfg = entry.make_config("tiny")
    model = entry.build(cfg).train()
    recipe = entry.recipe(model, cfg, TrainContext(device=torch.device("cpu"), total_steps=1))
    rgb = torch.from_numpy(data.astronaut()[:256:8, :256:8].copy()).permute(2, 0, 1)[None].float() / 255.0
    rgb = torch.cat([rgb, torch.from_numpy(data.coffee()[:256:8, :256:8].copy()).permute(2, 0, 1)[None] / 255.0])
    l, ab = split_lab(rgb)
    recipe.prepare([{"l": l, "ab": ab}])
    q = model.bins.shape[0]
    log_prior = model.prior.clamp_min(1e-12).log()[None, :, None, None]
    model.logits = lambda x: log_prior.expand(x.shape[0], q, x.shape[2] // 4, x.shape[3] // 4)
    with torch.no_grad():
        expected = float(recipe.classification_loss(l, ab))
    state = {k: v for k, v in model.state_dict().items() if k in ("bins", "prior", "rebalance")}
    assert _script().reference_loss(rgb, "ce", dataclasses.asdict(cfg), state) == pytest.approx(expected, rel=1e-5)
    # the recipe's own reference (what validation records beside each held-out line) is that same loss
    with torch.no_grad():
        recorded = float(recipe.reference_losses({"l": l, "ab": ab}, recipe.stages[0])["ce"])
    assert recorded == pytest.approx(expected, rel=1e-5)


def test_the_held_out_reference_a_run_recorded_is_the_one_printed(tmp_path, capsys):
    from zoo.plugins.registry import get_registry
    from zoo.store.runs import VAL_LOG

    entry = get_registry().get("vgg_decoder")  # its recipe records ab = 0's mse beside each validation
    out = tmp_path / "vgg"
    train(entry, entry.make_config("tiny"), resolve_dataset("samples:train"), steps=10, out_dir=out,
          device=torch.device("cpu"), seed=3, data_scale=2, checkpoint_every=10, workers=0, progress=False,
          val="samples:test", val_every=5)
    recorded = read_log(out, VAL_LOG)[0]["reference"]["mse"]
    # --val names other images: a recomputed reference would be refused, the recorded one needs none
    assert _script().main([str(out), "--data", "samples:train", "--val", "samples:train"]) == 0
    out_text = capsys.readouterr()
    assert f"reference {recorded:.4g}" in out_text.out and "fingerprint differs" not in out_text.err
