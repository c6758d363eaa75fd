"""One name per idea across models: the shared vocabulary, and what an old (zoo 0.1) field name does."""

from __future__ import annotations

import dataclasses
import json

import pytest

from zoo.errors import ZooError
from zoo.plugins.config import apply_overrides, renamed_fields
from zoo.plugins.registry import get_registry
from zoo.store.checkpoint import load_checkpoint, save_checkpoint, sidecar

from helpers import refused, zoo_cli

OLD_NAMES = {"pix2pix": {"beta1": "adam_beta1", "ngf": "features", "ndf": "d_features"},
             "edsr": {"n_feats": "features", "n_blocks": "blocks", "post_feats": "post_features"},
             "edsr_dqe": {"n_feats": "features", "dqe_feats": "dqe_features"},
             "srgan": {"d_feats": "d_features", "n_blocks": "blocks"},
             "unet_vae": {"beta2": "adam_beta2", "dec_width": "dec_features"},
             "vgg_decoder": {"decoder": "decoder_widths", "beta1": "adam_beta1"},
             "zhang": {"beta1": "adam_beta1"}}


@pytest.mark.parametrize("model", sorted(OLD_NAMES))
def test_old_names_are_refused_with_the_new_one(model):
    entry = get_registry().get(model)
    for old, new in OLD_NAMES[model].items():
        assert renamed_fields(entry.config)[old] == new
        with pytest.raises(ZooError, match=f"setting '{old}' is now called '{new}'"):
            entry.make_config("tiny", {old: "1"})


def test_the_shared_fields_mean_one_thing():
    registry = get_registry()
    trainable = [e for e in registry.entries() if e.trainable and e.distribution == "zoo"]
    assert len(trainable) == 7
    for entry in trainable:
        names = {f.name for f in dataclasses.fields(entry.config)}
        assert {"lr", "adam_beta1", "adam_beta2", "batch_size", "patch_size"} <= names, entry.name
        assert not names & {"beta1", "beta2", "n_feats", "n_blocks", "ngf", "ndf", "d_feats"}, entry.name


def test_the_optimiser_vocabulary_lives_in_train_config_and_every_recipe_reads_it():
    import torch

    import zoo
    from zoo.plugins.recipe import TrainContext

    assert {"lr", "adam_beta1", "adam_beta2"} <= {f.name for f in dataclasses.fields(zoo.TrainConfig)}
    for entry in [e for e in get_registry().entries() if e.trainable and e.distribution == "zoo"]:
        config = entry.make_config("tiny", {"lr": 3e-3, "adam_beta1": 0.7, "adam_beta2": 0.95})
        recipe = entry.recipe(entry.build(config), config, TrainContext(device=torch.device("cpu"), total_steps=4))
        for stage in recipe.stages:
            recipe.start_stage(stage)
            for name, opt in recipe.optimizers.items():
                group = opt.param_groups[0]
                assert group["betas"] == (0.7, 0.95), (entry.name, stage.name, name)
                assert group.get("initial_lr", group["lr"]) == pytest.approx(3e-3), (entry.name, stage.name, name)


def test_a_renamed_field_only_applies_where_the_new_name_exists():
    @dataclasses.dataclass
    class Keeps:  # a third-party config that still calls its width n_feats
        RENAMED = {"n_feats": "features"}
        n_feats: int = 8

    assert renamed_fields(Keeps) == {}
    assert apply_overrides(Keeps(), {"n_feats": 4}).n_feats == 4


def test_old_names_in_a_suite_and_on_the_command_line_are_one_line(tmp_path):
    res = zoo_cli("train", "--model", "edsr", "--preset", "tiny", "--set", "n_blocks=2", "--steps", "1",
                  "--out", tmp_path / "o")
    refused(res, "'n_blocks' is now called 'blocks'")
    suite = tmp_path / "s.toml"
    suite.write_text('train = "samples:train"\ntest = ["samples:test"]\nsteps = 1\n[overrides.pix2pix]\nngf = 8\n')
    refused(zoo_cli("bench", "--suite", suite, "--out", tmp_path / "run"), "'ngf' is now called 'features'")
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()


def test_a_checkpoint_written_with_old_names_still_loads(tmp_path):
    entry = get_registry().get("edsr")
    cfg = entry.make_config("tiny", {"blocks": 2, "features": 8})
    model = entry.build(cfg)
    path = save_checkpoint(tmp_path / "old.safetensors", model, {"model": "edsr", "config": {
        **dataclasses.asdict(cfg)}})
    meta = json.loads(sidecar(path).read_text())
    old = {("n_blocks" if k == "blocks" else "n_feats" if k == "features" else k): v
           for k, v in meta["config"].items()}
    sidecar(path).write_text(json.dumps({**meta, "config": old}))
    loaded = load_checkpoint(path)
    assert (loaded.config.blocks, loaded.config.features) == (2, 8)
