"""The trainable SR models: edsr, edsr_dqe, srgan (plugins/zoo_sr) and the VGG feature loss they share."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import ZooError
from zoo.plugins.recipe import NonFiniteLossError, TrainContext
from zoo.store.checkpoint import load_checkpoint, save_checkpoint

EDSR_MISSING = "vgg19 weights: missing -> content loss off"
SRGAN_MISSING = "vgg19 weights: missing -> content loss = pixel MSE"


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a shared 2-core machine: one intra-op thread is many times faster than two when
    other jobs load the cores (measured 0.6 ms vs 30 ms for one 16-channel conv), and it makes runs repeatable."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def empty_torch_home(monkeypatch, tmp_path_factory):
    """No pretrained weights unless a test writes its own (the conftest does the same; this makes the missing-
    weights notes independent of it)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-empty")))


@pytest.fixture(scope="module")
def registry():
    return zoo.get_registry()


def _astronaut() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)[None]  # (1, 3, 512, 512)


def real_batch(scale: int, lr_patch: int, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """HR crops of a real photograph, LR by antialiased bicubic (close enough to MATLAB's for these tests)."""
    img = _astronaut()
    g = torch.Generator().manual_seed(seed)
    side = lr_patch * scale
    crops = []
    for _ in range(n):
        y, x = (int(v) for v in torch.randint(0, img.shape[-1] - side, (2,), generator=g))
        crops.append(img[:, :, y:y + side, x:x + side])
    hr = torch.cat(crops)
    lr = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return {"lr": lr.clamp(0, 1), "hr": hr}


def make(registry, name, preset="tiny", total_steps=10, seed=0, **overrides):
    torch.manual_seed(seed)
    entry = registry.get(name)
    cfg = entry.make_config(preset, overrides)
    model = entry.build(cfg)
    ctx = TrainContext(device=torch.device("cpu"), total_steps=total_steps)
    recipe = entry.recipe(model, cfg, ctx)
    return entry, cfg, model, ctx, recipe


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    return [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)]


def run_stage(recipe, model, stage, batch, steps: int) -> list[dict[str, float]]:
    recipe.start_stage(stage)
    model.train()  # what the loop does after start_stage
    return [recipe.training_step(batch, stage, i) for i in range(steps)]


def write_random_vgg19(torch_home) -> None:
    """A VGG19 file with torchvision's key names and shapes (features only) and He-normal random weights."""
    from zoo.store.weights import VGG19
    from zoo.training.losses import vgg19_features

    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in vgg19_features("pool5").state_dict().items():
        if k.endswith("weight"):
            state[f"features.{k}"] = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())
        else:
            state[f"features.{k}"] = torch.zeros(v.shape)
    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(state, ckpt / VGG19.filename)


# -- sizes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, preset, expected", [
    ("edsr", "paper", 1_369_859),  # EDSR baseline x2 (16 blocks, 64 features)
    ("edsr", "super_colorization", 2_921_795),  # seed 000: "about 3M"
    ("edsr_dqe", "paper", 4_143_942),  # EDSR baseline + DQE (2,774,083)
    ("edsr_dqe", "super_colorization", 5_695_878),  # seed 000: "3M + 2.8M ~ 6M"
    ("srgan", "paper", 1_549_462),  # SRResNet generator, x4
    ("srgan", "seed_course", 1_549_446),  # ReLU instead of PReLU in the 16 blocks
])
def test_parameter_counts(registry, name, preset, expected):
    assert registry.get(name).parameter_count(preset) == expected


def test_counts_agree_with_the_seed_report(registry):
    edsr = registry.get("edsr").parameter_count("super_colorization")
    total = registry.get("edsr_dqe").parameter_count("super_colorization")
    dqe = total - edsr
    assert abs(edsr - 3.0e6) / 3.0e6 < 0.05  # "about 3M parameters"
    assert abs(dqe - 2.8e6) / 2.8e6 < 0.02  # "about 2.8 M parameters"
    # the paper preset of edsr_dqe uses the same DQE
    assert registry.get("edsr_dqe").parameter_count("paper") - registry.get("edsr").parameter_count("paper") == dqe


def test_srgan_without_batch_norm_drops_only_the_bn_parameters(registry):
    entry = registry.get("srgan")
    with_bn = entry.create("paper", scale=2)
    without = entry.create("paper", scale=2, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())
    n_bn = sum(p.numel() for m in with_bn.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert n_bn == (2 * 16 + 1) * 2 * 64  # 16 blocks x 2 BN + the BN after the body, weight and bias of 64
    assert entry.parameter_count("paper", scale=2) - entry.parameter_count("paper", scale=2, batch_norm=False) == n_bn
    # the tiny preset uses it, and a linear output (values may leave [0, 1]; the evaluator clamps)
    tiny = entry.make_config("tiny")
    assert tiny.batch_norm is False and tiny.output == "linear"


def test_edsr_x4_upsampler_is_two_x2_stages(registry):
    model = registry.get("edsr").create("tiny", scale=4)
    shuffles = [m.upscale_factor for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert shuffles == [2, 2]
    assert [m.upscale_factor for m in registry.get("edsr").create("tiny", scale=3).modules()
            if isinstance(m, torch.nn.PixelShuffle)] == [3]


def test_srgan_discriminator_matches_paper_at_96px():
    """At the paper's 96x96 input the pool sees a 6x6x512 map (so it is the identity) and the head is the
    paper's dense 18432 -> 1024 -> 1; other patch sizes work too."""
    from zoo_sr.srgan import Discriminator, SrganConfig

    torch.manual_seed(0)
    disc = Discriminator(SrganConfig()).eval()
    with torch.no_grad():
        feats = disc.features(torch.rand(1, 3, 96, 96))
        pooled = disc.pool(feats)
        odd = disc(torch.rand(1, 3, 60, 44))
    assert tuple(feats.shape) == (1, 512, 6, 6) and torch.equal(pooled, feats)
    assert disc.head[1].in_features == 512 * 6 * 6 and disc.head[1].out_features == 1024
    assert tuple(odd.shape) == (1,)
    assert sum(p.numel() for p in disc.parameters()) == 23_565_505


# -- shapes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["edsr", "edsr_dqe", "srgan"])
def test_output_shape_odd_input(registry, name, scale):
    torch.manual_seed(0)
    model = registry.get(name).create("tiny", scale=scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 7, 11))
    assert model.scale == scale
    assert out.shape == (2, 3, 7 * scale, 11 * scale) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_unsupported_scale_is_refused(registry):
    for name in ("edsr", "edsr_dqe", "srgan"):
        with pytest.raises(ValueError, match="5"):
            registry.get(name).create("tiny", scale=5)


# -- learning ------------------------------------------------------------------------------------------------


def test_edsr_tiny_overfits_one_batch(registry):
    # Measured (seeds 0-2): the mean of the last 3 L1 losses is 8.9-12.7x below the first 3 after 150 steps.
    entry, cfg, model, ctx, recipe = make(registry, "edsr", total_steps=150)
    batch = real_batch(cfg.scale, cfg.patch_size)
    logs = run_stage(recipe, model, recipe.stages[0], batch, 150)
    first = sum(log["l1"] for log in logs[:3]) / 3
    last = sum(log["l1"] for log in logs[-3:]) / 3
    assert first / last > 5, (first, last)
    assert last < 0.04
    assert ctx.notes == []  # content_weight is 0: VGG19 never asked for


def test_srgan_tiny_overfits_one_batch_in_srresnet_stage(registry):
    # Measured (seeds 0-2): pixel MSE falls 12.6-28.9x in 75 steps.
    entry, cfg, model, ctx, recipe = make(registry, "srgan", total_steps=150)
    batch = real_batch(cfg.scale, cfg.patch_size)
    stage = recipe.stages[0]
    assert stage.name == "srresnet"
    logs = run_stage(recipe, model, stage, batch, 75)
    first = sum(log["mse"] for log in logs[:3]) / 3
    last = sum(log["mse"] for log in logs[-3:]) / 3
    assert first / last > 5, (first, last)


def test_edsr_dqe_two_stages(registry):
    """Stage edsr overfits; stage dqe leaves EDSR untouched, trains DQE, and the pair beats EDSR alone."""
    entry, cfg, model, ctx, recipe = make(registry, "edsr_dqe", total_steps=200)
    assert [s.name for s in recipe.stages] == ["edsr", "dqe"]
    assert [s.fraction for s in recipe.stages] == [0.5, 0.5]
    batch = real_batch(cfg.scale, cfg.patch_size)

    dqe_before = snapshot(model.dqe)
    logs = run_stage(recipe, model, recipe.stages[0], batch, 100)
    assert logs[0]["loss"] / logs[-1]["loss"] > 5  # measured 8.2-11.7x (seeds 0-2)
    assert changed(dqe_before, model.dqe) == []  # stage edsr trains EDSR only
    model.eval()
    with torch.no_grad():
        edsr_only = F.l1_loss(model.edsr(batch["lr"]), batch["hr"]).item()
        assert torch.equal(model(batch["lr"]), model.edsr(batch["lr"]))  # DQE starts as the identity

    edsr_before, dqe_before = snapshot(model.edsr), snapshot(model.dqe)
    logs = run_stage(recipe, model, recipe.stages[1], batch, 100)
    assert changed(edsr_before, model.edsr) == []
    assert not any(p.requires_grad for p in model.edsr.parameters())
    assert not model.edsr.training and model.dqe.training  # frozen EDSR stays in eval after model.train()
    assert len(changed(dqe_before, model.dqe)) == len(dqe_before)
    model.eval()
    with torch.no_grad():
        pair = F.l1_loss(model(batch["lr"]), batch["hr"]).item()
    assert pair < 0.97 * edsr_only, (pair, edsr_only)  # measured 0.81-0.94 of EDSR's L1 (seeds 0-2)


def test_srgan_runs_both_stages_without_vgg(registry):
    entry, cfg, model, ctx, recipe = make(registry, "srgan", total_steps=8)
    assert ctx.notes == [SRGAN_MISSING]  # the conftest's TORCH_HOME is empty
    assert [s.name for s in recipe.stages] == ["srresnet", "gan"]
    batch = real_batch(cfg.scale, cfg.patch_size, n=2)
    disc = recipe.aux["discriminator"]

    d_before, g_before = snapshot(disc), snapshot(model)
    logs = run_stage(recipe, model, recipe.stages[0], batch, 3)
    assert changed(d_before, disc) == [] and changed(g_before, model)
    assert set(logs[-1]) == {"mse"}

    d_before, g_before = snapshot(disc), snapshot(model)
    logs = run_stage(recipe, model, recipe.stages[1], batch, 4)
    assert changed(d_before, disc) and changed(g_before, model)
    assert all(p.requires_grad for p in disc.parameters())
    log = logs[-1]
    assert set(log) == {"g", "content", "adv", "d"} and all(math.isfinite(v) for v in log.values())
    assert log["g"] == pytest.approx(log["content"] + cfg.adv_weight * log["adv"], rel=1e-5)
    # gan stage of 4 steps, lr x0.1 after half of it (paper: 1e-4 then 1e-5)
    assert recipe.optimizers["g"].param_groups[0]["lr"] == pytest.approx(cfg.lr * 0.1)
    assert recipe.optimizers["d"].param_groups[0]["lr"] == pytest.approx(cfg.lr * 0.1)
    # the discriminator is checkpointed with the recipe
    assert any(k.startswith("discriminator.") for k in recipe.state_dict()["aux"])


@pytest.mark.parametrize("name", ["edsr", "edsr_dqe"])
def test_content_loss_off_without_vgg_weights(registry, name):
    entry, cfg, model, ctx, recipe = make(registry, name, content_weight=1.0)
    assert ctx.notes == [EDSR_MISSING]
    assert recipe.content is None
    log = run_stage(recipe, model, recipe.stages[0], real_batch(cfg.scale, cfg.patch_size, n=2), 1)[0]
    assert "content" not in log and log["loss"] == pytest.approx(log["l1"])


def test_vgg_content_loss_with_weights_present(registry, tmp_path, monkeypatch):
    write_random_vgg19(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    entry, cfg, model, ctx, recipe = make(registry, "edsr", content_weight=1.0)
    assert ctx.notes == []
    assert recipe.content is not None and recipe.content.layer == "relu2_2"
    assert not any(p.requires_grad for p in recipe.content.parameters())
    batch = real_batch(cfg.scale, cfg.patch_size, n=2)
    log = run_stage(recipe, model, recipe.stages[0], batch, 1)[0]
    assert log["content"] > 1e-6
    assert log["loss"] == pytest.approx(log["l1"] + log["content"], rel=1e-5)

    entry, cfg, model, ctx, recipe = make(registry, "srgan", total_steps=2, batch_size=2)
    assert ctx.notes == []
    assert recipe.content.layer == "relu5_4" and recipe.content.rescale == pytest.approx(1 / 12.75)
    batch = real_batch(cfg.scale, cfg.patch_size, n=2)
    run_stage(recipe, model, recipe.stages[0], batch, 1)
    log = run_stage(recipe, model, recipe.stages[1], batch, 1)[0]
    model.eval()
    with torch.no_grad():
        from zoo_sr.srgan import pixel_mse

        pixel = pixel_mse(model(batch["lr"]), batch["hr"]).item()
    assert log["content"] > 0 and log["content"] != pytest.approx(pixel, rel=1e-3)


def test_vgg_feature_loss_properties(tmp_path, monkeypatch):
    from zoo.training.losses import VGGFeatureLoss

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert VGGFeatureLoss.from_hub("relu2_2") is None  # missing weights: no loss, never a random VGG
    write_random_vgg19(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loss = VGGFeatureLoss.from_hub("relu2_2")
    loss.train()
    assert not loss.training
    a = torch.rand(1, 3, 16, 16, requires_grad=True)
    b = torch.rand(1, 3, 16, 16)
    assert loss(b, b).item() == 0
    value = loss(a, b)
    value.backward()
    assert value.item() > 0 and a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="relu9_9"):
        VGGFeatureLoss({}, layer="relu9_9")


def test_edsr_lr_halves_on_schedule(registry):
    entry, cfg, model, ctx, recipe = make(registry, "edsr", lr_decay_steps=2)
    batch = real_batch(cfg.scale, cfg.patch_size, n=1)
    run_stage(recipe, model, recipe.stages[0], batch, 2)
    group = recipe.optimizers["main"].param_groups[0]
    assert group["lr"] == pytest.approx(cfg.lr / 2)
    paper = entry.make_config("paper")
    assert (paper.lr, paper.adam_beta1, paper.adam_beta2, paper.adam_eps) == (1e-4, 0.9, 0.999, 1e-8)
    assert (paper.lr_decay_steps, paper.lr_decay_gamma, paper.patch_size, paper.batch_size) == (200_000, 0.5, 48, 16)


# -- non-finite losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, stage_index", [("edsr", 0), ("edsr_dqe", 0), ("edsr_dqe", 1), ("srgan", 0),
                                               ("srgan", 1)])
def test_nan_batch_raises_before_any_update(registry, name, stage_index):
    entry, cfg, model, ctx, recipe = make(registry, name)
    batch = real_batch(cfg.scale, cfg.patch_size, n=2)
    batch["lr"][0, 0, 0, 0] = float("nan")
    stage = recipe.stages[stage_index]
    recipe.start_stage(stage)
    before, aux_before = snapshot(model), snapshot(recipe.aux)
    with pytest.raises(NonFiniteLossError):
        recipe.training_step(batch, stage, 0)
    # only BN running statistics of the forward pass may move; no parameter does
    params = {k for k, _ in model.named_parameters()}
    assert [k for k in changed(before, model) if k in params] == []
    aux_params = {k for k, _ in recipe.aux.named_parameters()}
    assert [k for k in changed(aux_before, recipe.aux) if k in aux_params] == []


# -- checkpoints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edsr", "edsr_dqe", "srgan"])
def test_safetensors_round_trip(registry, tmp_path, name):
    entry, cfg, model, ctx, recipe = make(registry, name, total_steps=4, scale=3)
    batch = real_batch(cfg.scale, cfg.patch_size, n=2)
    for stage in recipe.stages:  # a few steps so BN statistics and DQE's zero-init layer are not at init
        run_stage(recipe, model, stage, batch, 2)
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"model": name, "config": dataclasses.asdict(cfg)})
    loaded = load_checkpoint(path, registry)
    assert loaded.entry.name == name and loaded.config == cfg
    model.eval()
    x = torch.rand(1, 3, 9, 13)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_edsr_dqe_starts_from_edsr_checkpoint(registry, tmp_path):
    from zoo.training.loop import stage_plan
    from zoo_sr.edsr_dqe import load_edsr_stage

    e_entry, e_cfg, edsr, _, e_recipe = make(registry, "edsr", seed=1)
    run_stage(e_recipe, edsr, e_recipe.stages[0], real_batch(e_cfg.scale, e_cfg.patch_size, n=2), 2)
    path = save_checkpoint(tmp_path / "edsr.safetensors", edsr,
                           {"model": "edsr", "config": dataclasses.asdict(e_cfg)})

    entry, cfg, model, ctx, recipe = make(registry, "edsr_dqe", total_steps=10, edsr_checkpoint=str(path))
    assert [(s.name, s.fraction) for s in recipe.stages] == [("edsr", 0.0), ("dqe", 1.0)]
    assert [(s.name, a, b) for s, a, b in stage_plan(tuple(recipe.stages), 10)] == [("dqe", 0, 10)]
    assert any("edsr.safetensors" in n for n in ctx.notes)
    edsr.eval()
    model.eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.edsr(x), edsr(x))

    # the function form
    _, _, other, _, _ = make(registry, "edsr_dqe", seed=3)
    load_edsr_stage(other, edsr.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.edsr.state_dict().values(), edsr.state_dict().values()))

    # an EDSR of another architecture is refused, naming the difference (normalisation is not in the tensors)
    with pytest.raises(ZooError, match="norm"):
        make(registry, "edsr_dqe", edsr_checkpoint=str(path), norm="imagenet")
    with pytest.raises(ZooError, match="features"):
        make(registry, "edsr_dqe", edsr_checkpoint=str(path), features=32)


def test_unknown_content_layer_is_refused_even_without_weights(registry):
    with pytest.raises(ValueError, match="relu9_9"):
        make(registry, "edsr", content_layer="relu9_9", content_weight=1.0)
    with pytest.raises(ValueError, match="relu9_9"):
        make(registry, "srgan", content_layer="relu9_9")
