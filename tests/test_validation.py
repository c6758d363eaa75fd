"""Held-out validation during training (zoo.training.validation): what it logs, that it never changes training,
resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from zoo.data.datasets import resolve_dataset
from zoo.data.imageio import DataWarning
from zoo.errors import ZooError
from zoo.harness.bench import plan_bench
from zoo.harness.suite import load_suite
from zoo.plugins.recipe import Recipe
from zoo.plugins.registry import get_registry
from zoo.store.runs import VAL_LOG, read_log
from zoo.training import validation
from zoo.training.loop import TrainSettings, run_key, train

from helpers import refused, zoo_cli


def _train(entry, out, *, steps=12, val="samples:test", val_every=5, **kw):
    config = entry.make_config("tiny", {})
    return train(entry, config, resolve_dataset("samples:train"), steps=steps, out_dir=out,
                 device=torch.device("cpu"), seed=1, checkpoint_every=4, workers=0, progress=False,
                 val=val, val_every=val_every, **kw)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def unet_vae():
    return get_registry().get("unet_vae")  # samples its latent and uses the RNG in training: the hard case


def test_validating_changes_neither_weights_nor_training_log(unet_vae, tmp_path):
    _train(unet_vae, tmp_path / "plain", val=None)
    _train(unet_vae, tmp_path / "val")
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "val")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_log(tmp_path / "plain") == read_log(tmp_path / "val")
    assert not (tmp_path / "plain" / VAL_LOG).exists()
    rows = read_log(tmp_path / "val", VAL_LOG)
    assert [r["step"] for r in rows] == [5, 10, 12]  # every 5 steps and at the last one
    assert set(rows[0]) == {"step", "stage", "loss", "l1", "kl", "reference"}
    assert set(rows[0]["reference"]) == {"loss", "l1"} and rows[0]["reference"] == rows[-1]["reference"]
    assert rows[0]["l1"] != rows[-1]["l1"]  # the losses of the weights at each step, not one number


def test_the_same_weights_validate_to_the_same_losses(tmp_path):
    # Fixed crops and a fixed seed for what the recipe samples: two runs of one key log identical lines.
    entry = get_registry().get("unet_vae")
    _train(entry, tmp_path / "a", steps=4, val_every=2)
    _train(entry, tmp_path / "b", steps=4, val_every=2)
    assert read_log(tmp_path / "a", VAL_LOG) == read_log(tmp_path / "b", VAL_LOG)


def test_an_interrupted_run_resumes_its_validation_log_exactly(monkeypatch, tmp_path):
    entry = get_registry().get("vgg_decoder")
    _train(entry, tmp_path / "straight")
    step_of = entry.recipe.training_step

    def cut(self, batch, stage, step):
        if step == 11:  # after the validation of step 10, whose checkpoint (step 8) is older
            raise KeyboardInterrupt
        return step_of(self, batch, stage, step)

    monkeypatch.setattr(entry.recipe, "training_step", cut)
    with pytest.raises(KeyboardInterrupt):
        _train(entry, tmp_path / "cut")
    assert [r["step"] for r in read_log(tmp_path / "cut", VAL_LOG)] == [5, 10]
    monkeypatch.setattr(entry.recipe, "training_step", step_of)
    assert _train(entry, tmp_path / "cut").resumed_from == 8
    assert read_log(tmp_path / "cut", VAL_LOG) == read_log(tmp_path / "straight", VAL_LOG)


def test_the_run_records_its_validation_and_is_keyed_by_it(tmp_path):
    entry = get_registry().get("vgg_decoder")
    _train(entry, tmp_path / "run", steps=4)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    val = resolve_dataset("samples:test")
    assert meta["validation"] == {"data": val.fingerprint(), "name": "samples:test", "every": 5, "crops": 256,
                                  "seed": 104729, "format": validation.FORMAT}
    config = entry.make_config("tiny", {})
    train_fp = resolve_dataset("samples:train").fingerprint()
    at = TrainSettings(steps=4, seed=1, val="samples:test")
    keys = {run_key(entry, config, train_fp, s, fp)
            for s, fp in ((at, None), (at.replace(val_every=5), val.fingerprint()),
                          (at.replace(val_every=2), val.fingerprint()))}
    assert len(keys) == 3
    assert meta["run_key"] == run_key(entry, config, train_fp, at.replace(val_every=5), val.fingerprint())


def test_a_folder_of_held_out_images_is_named_without_its_path(tmp_path):
    import shutil

    folder = tmp_path / "held" / "out"
    folder.mkdir(parents=True)
    for item in resolve_dataset("samples:test").items()[:2]:
        shutil.copy(item.path, folder / Path(item.path).name)
    entry = get_registry().get("vgg_decoder")
    _train(entry, tmp_path / "run", steps=2, val=str(folder))
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["validation"]["name"] == "out"
    assert str(tmp_path) not in json.dumps(meta["validation"])


class _NoValidation(Recipe):
    def start_stage(self, stage):
        self.optimizers["g"] = torch.optim.SGD(self.model.parameters(), lr=1e-3)

    def training_step(self, batch, stage, step):
        return {"l1": self.backward_step(F.l1_loss(self.model(batch["l"]), batch["ab"]), "g")}


class _Net(zoo.Colorizer):
    def __init__(self, cfg):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, l):
        return self.conv(l / 100.0)


def test_a_recipe_without_validation_losses_trains_and_says_so(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Config(zoo.TrainConfig):
        batch_size: int = 2
        patch_size: int = 16

    entry = zoo.ModelEntry(name="noval", build=_Net, config=Config, summary="test", recipe=_NoValidation,
                           task="colorizer", presets={"tiny": {}})
    result = _train(entry, tmp_path / "run", steps=6)
    assert result.steps == 6
    assert not (tmp_path / "run" / VAL_LOG).exists()
    assert any("no validation losses" in n for n in result.notes)


def test_zoo_train_val_on_the_command_line(tmp_path):
    res = zoo_cli("train", "--model", "pix2pix", "--preset", "tiny", "--steps", "4", "--val", "samples:test",
                  "--val-every", "2", "--out", str(tmp_path / "run"))
    assert res.rc == 0, res
    assert [r["step"] for r in read_log(tmp_path / "run", VAL_LOG)] == [2, 4]
    assert set(read_log(tmp_path / "run", VAL_LOG)[0]) == {"step", "stage", "l1", "reference"}
    again = zoo_cli("train", "--model", "pix2pix", "--preset", "tiny", "--steps", "4", "--val", "samples:test",
                    "--val-every", "2", "--out", str(tmp_path / "run"))
    assert "already trained" in again.out  # the CLI and the loop agree on the key of a run with validation
    refused(zoo_cli("train", "--model", "pix2pix", "--preset", "tiny", "--steps", "2", "--val",
                    str(tmp_path / "missing"), "--out", str(tmp_path / "r2")), "missing")


def test_a_suite_validates_its_trainings(tmp_path):
    suite_file = tmp_path / "s.toml"
    suite_file.write_text('train = "samples:train"\ntest = ["samples:test"]\nval = "samples:test"\nsteps = 40\n'
                          'colorizers = ["vgg_decoder"]\nsr = []\n')
    suite = load_suite(str(suite_file))
    plan = plan_bench(suite, registry=get_registry(), run_dir=tmp_path / "r", cache=tmp_path / "c",
                      colorizers=["vgg_decoder"], sr=[])
    (job,) = plan.train_jobs
    assert (job.settings.val, job.settings.validation_spacing) == ("samples:test", 2)  # 20 a run by default
    plain = plan_bench(suite.replace(val=""), registry=get_registry(), run_dir=tmp_path / "r",
                       cache=tmp_path / "c", colorizers=["vgg_decoder"], sr=[])
    assert plain.train_jobs[0].key != job.key and plain.train_jobs[0].settings.val is None
    suite_file.write_text('train = "samples:train"\ntest = ["samples:test"]\nval = "samples:test"\nval_every = -1\n')
    with pytest.raises(ZooError, match="val_every"):
        load_suite(str(suite_file))


def test_color_classic_validates_on_a_set_it_neither_trains_nor_tests_on():
    suite = load_suite("color-classic")
    assert suite.val.endswith("Set14")
    assert suite.val not in (suite.train, *suite.test)


def test_curves_draw_the_held_out_losses(tmp_path):
    from PIL import Image

    from zoo.boards.curves import loss_curves

    log = [{"step": s, "stage": "main", "mse": 1.0 / s} for s in range(1, 21)]
    val = [{"step": s, "stage": "main", "mse": 0.5 / s} for s in (5, 10, 20)]
    loss_curves(tmp_path / "a.png", {"m": log})
    loss_curves(tmp_path / "b.png", {"m": log}, {"m": val})
    a, b = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert a.size == b.size and a.tobytes() != b.tobytes()


def test_curves_smooth_without_lag_and_draw_the_tables_main_loss():
    from zoo.boards.curves import _smooth
    from zoo.store.runs import main_loss

    step = [1.0] * 50 + [0.0] * 50
    smooth = _smooth(step, share=0.1)
    assert smooth[:45] == [1.0] * 45 and smooth[55:] == [0.0] * 45  # centred: the fall stays where it happened
    assert smooth[49] > 0.5 > smooth[50]
    # a pre-training stage's loss does not span the run: the later stage's shared loss is the main one
    log = [{"step": s, "stage": "pre" if s <= 5 else "gan", **({"mse": 1.0} if s <= 5 else {"g": 3.0}), "l1": 0.5}
           for s in range(1, 21)]
    assert main_loss(log, 20) == "l1" and main_loss([], 20) is None


def test_held_out_images_too_small_for_a_crop_stop_the_run_before_its_first_step(tmp_path):
    from PIL import Image

    folder = tmp_path / "small"
    folder.mkdir()
    Image.new("RGB", (20, 20), (200, 40, 40)).save(folder / "a.png")
    res = zoo_cli("train", "--model", "vgg_decoder", "--preset", "tiny", "--steps", "4", "--val", str(folder),
                  "--out", str(tmp_path / "run"))
    refused(res, "no image in", "large enough")
    assert not (tmp_path / "run" / "log.jsonl").exists() and not (tmp_path / "run" / "model.safetensors").exists()


def test_a_colorizer_validates_on_colour_files_only(tmp_path):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(folder / "colour.png")
    Image.fromarray(rng.integers(0, 255, (160, 160), dtype=np.uint8)).save(folder / "grey.png")  # mode L
    entry = get_registry().get("vgg_decoder")
    with pytest.warns(DataWarning, match="grey.png: a greyscale file has no colour"):
        _train(entry, tmp_path / "run", steps=2, val=str(folder), val_every=1)
    assert len(read_log(tmp_path / "run", VAL_LOG)) == 2
    (folder / "colour.png").unlink()
    res = zoo_cli("train", "--model", "vgg_decoder", "--preset", "tiny", "--steps", "2", "--val", str(folder),
                  "--out", str(tmp_path / "run2"))
    refused(res, "greyscale file")
    # An SR model has no such rule: the grey file is a valid held-out image for it.
    sr = get_registry().get("edsr")
    _train(sr, tmp_path / "sr", steps=2, val=str(folder), val_every=1)
    assert len(read_log(tmp_path / "sr", VAL_LOG)) == 2


def test_the_spacing_defaults_to_twenty_validations_a_run_and_is_part_of_the_key_only_when_validating():
    assert validation.spacing(0, 100) == validation.spacing(None, 100) == 5
    assert validation.spacing(0, 7) == 1  # a short run still validates every step, not never
    assert validation.spacing(3, 100) == 3
    entry = get_registry().get("vgg_decoder")
    config, at = entry.make_config("tiny", {}), TrainSettings(steps=100)
    # without held-out data the spacing is not in the key; with it, the default spacing is the key of 5
    assert run_key(entry, config, "data", at) == run_key(entry, config, "data", at.replace(val_every=3))
    assert run_key(entry, config, "data", at, "fp") == run_key(entry, config, "data", at.replace(val_every=5), "fp")
    assert run_key(entry, config, "data", at, "fp") != run_key(entry, config, "data", at.replace(val_every=3), "fp")


def _validate_once(entry, model, cfg, tmp_path, *, scale=2):
    from zoo.plugins.recipe import TrainContext
    from zoo.training.loop import _to_device

    recipe = entry.recipe(model, cfg, TrainContext(device=torch.device("cpu"), total_steps=1))
    validator = validation.Validator(resolve_dataset("samples:test"), 1, tmp_path / VAL_LOG, task=entry.task,
                                     patch_size=cfg.patch_size, scale=scale, batch_size=2, total_steps=1)
    return validator.run(recipe, entry.recipe.stages[-1], 1, lambda b: _to_device(b, torch.device("cpu"),
                                                                                  entry.task, False))


def test_a_colorizer_that_answers_ab_0_validates_to_exactly_its_reference(tmp_path):
    entry = get_registry().get("vgg_decoder")
    cfg = entry.make_config("tiny")
    model = entry.build(cfg)
    last = [m for m in model.decoder if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)  # tanh(0) = 0: the gray baseline's answer
    row = _validate_once(entry, model, cfg, tmp_path)
    assert row["mse"] > 0 and row["mse"] == pytest.approx(row["reference"]["mse"], rel=1e-6)
    assert read_log(tmp_path, VAL_LOG) == [row]


def test_an_sr_models_reference_is_bicubic(tmp_path):
    entry = get_registry().get("edsr")
    cfg = entry.make_config("tiny")
    row = _validate_once(entry, entry.build(cfg), cfg, tmp_path, scale=cfg.scale)
    assert {"loss", "l1"} <= set(row["reference"])
    assert 0 < row["reference"]["l1"] < 0.2  # bicubic is close to the truth; an untrained EDSR need not be
    assert row["reference"]["l1"] != row["l1"]


def test_the_training_table_reads_held_out_losses_against_their_reference(tmp_path):
    from zoo.store.runs import loss_summary

    rows = [{"step": s, "stage": "main", "mse": 1.0 - s / 40} for s in range(1, 21)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    val = [{"step": s, "stage": "main", "mse": m, "reference": {"mse": 0.5}} for s, m in ((2, 0.45), (20, 0.40))]
    (tmp_path / VAL_LOG).write_text("".join(json.dumps(r) + "\n" for r in val))
    summary = loss_summary(tmp_path, 20)
    assert summary["held_out"] == [0.45, 0.40] and summary["reference"] == [0.5, 0.5]

