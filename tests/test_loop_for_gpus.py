"""The training loop's GPU-facing behaviour, checked on a CPU: deferred loss reads, the buffered log, uint8
batches, cached colour constants, mixed precision state, config checks, --deterministic, device-keyed
evaluations."""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from zoo.errors import ZooError
from zoo.plugins.recipe import Recipe, Stage, TrainContext

CPU = torch.device("cpu")
SEEN: dict[str, list] = {"log_lines": [], "autocast_in_backward": [], "autocast_in_step": []}
INTERRUPT_AT = {"step": -1}


@dataclass
class Cfg:
    scale: int = 2
    batch_size: int = 2
    patch_size: int = 12
    fail_at: int = -1


class Net(zoo.SuperResolver):
    def __init__(self, cfg):
        super().__init__(cfg.scale)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                        torch.nn.Conv2d(8, 3 * cfg.scale**2, 3, padding=1))
        self.up = torch.nn.PixelShuffle(cfg.scale)

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear") + self.up(self.body(x))


class LogWatchingRecipe(Recipe):
    stages = (Stage("main"),)

    def start_stage(self, stage):
        self.optimizers["g"] = torch.optim.Adam(self.model.parameters(), lr=1e-2)

    def training_step(self, batch, stage, step):
        if step == INTERRUPT_AT["step"]:
            raise KeyboardInterrupt
        path = self.ctx_log
        SEEN["log_lines"].append(len(path.read_text().splitlines()) if path.exists() else 0)
        with self.autocast():
            loss = F.l1_loss(self.model(batch["lr"]).float(), batch["hr"])
        if 0 <= self.config.fail_at <= step:
            loss = loss * float("nan")
        return {"l1": self.backward_step(loss, "g"), "mean": self.loggable(batch["hr"].mean())}


ENTRY = zoo.ModelEntry(name="gpuloop", build=Net, config=Cfg, summary="test", recipe=LogWatchingRecipe)


@pytest.fixture(scope="module")
def entry():
    plugin = types.ModuleType("gpuloop_plugin")
    plugin.register_sr_models = zoo.hookimpl(lambda register: register(ENTRY))
    return zoo.load_registry(entry_points=False, plugins=[("gpuloop_plugin", plugin)]).get("gpuloop")


@pytest.fixture(scope="module")
def data():
    from zoo.data.datasets import resolve_dataset

    return resolve_dataset("samples:train")


def _train(entry, data, out, steps=9, read_every=None, **cfg):
    from zoo.training.loop import train

    LogWatchingRecipe.ctx_log = out / "log.jsonl"
    return train(entry, entry.make_config(overrides=cfg), data, steps=steps, out_dir=out, device=CPU, seed=3,
                 checkpoint_every=3, workers=0, progress=False, read_every=read_every)


def _log(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_deferred_loss_reads_give_the_same_log_and_weights(entry, data, tmp_path):
    _train(entry, data, tmp_path / "every")
    _train(entry, data, tmp_path / "deferred", read_every=4)
    assert _log(tmp_path / "every") == _log(tmp_path / "deferred")
    assert [r["step"] for r in _log(tmp_path / "every")] == list(range(1, 10))
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("every", "deferred"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_deferred_non_finite_loss_stops_before_the_next_checkpoint(entry, data, tmp_path):
    with pytest.raises(ZooError, match=r"loss for optimiser 'g' became nan at step 5"):
        _train(entry, data, tmp_path / "run", read_every=4, fail_at=4)
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 3
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2, 3]


def test_the_log_is_written_at_checkpoints_and_survives_a_crash_up_to_the_last_one(entry, data, tmp_path):
    SEEN["log_lines"].clear()
    INTERRUPT_AT["step"] = 7  # the last checkpoint is at step 6
    try:
        with pytest.raises(KeyboardInterrupt):
            _train(entry, data, tmp_path / "run")
    finally:
        INTERRUPT_AT["step"] = -1
    # lines seen by step 0..6 (0-based): the file grows only at the checkpoints after steps 3 and 6
    assert SEEN["log_lines"] == [0, 0, 0, 3, 3, 3, 6]
    assert [r["step"] for r in _log(tmp_path / "run")] == list(range(1, 7))
    _train(entry, data, tmp_path / "run")
    assert [r["step"] for r in _log(tmp_path / "run")] == list(range(1, 10))


def test_the_loop_asks_for_uint8_batches_and_pins_memory_only_for_cuda(entry, data, tmp_path, monkeypatch):
    import zoo.data.loader

    calls, real = [], zoo.data.loader.make_train_loader

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo.data.loader, "make_train_loader", recording)
    _train(entry, data, tmp_path / "run", steps=3)
    main = calls[-1]
    assert main["uint8"] is True and main["pin_memory"] is False and main["workers"] == 0


@pytest.mark.parametrize("task, scale", [("sr", 2), ("sr", 3), ("colorizer", 2), ("colorizer", 1)])
def test_uint8_batches_become_the_float_batches_on_the_device(data, task, scale):
    from zoo.data.loader import make_train_loader
    from zoo.training.loop import _to_device

    kw = dict(task=task, patch_size=16, scale=scale, batch_size=5, seed=1, workers=0, steps=3)
    for x, y in zip(make_train_loader(data, **kw), make_train_loader(data, uint8=True, **kw)):
        assert {v.dtype for v in y.values()} == {torch.uint8} and {v.dtype for v in x.values()} == {torch.float32}
        fx, fy = _to_device(x, CPU, task, False), _to_device(y, CPU, task, False)
        assert fx.keys() == fy.keys() and all(torch.equal(fx[k], fy[k]) for k in fx)


def test_colour_constants_are_made_once_per_device_and_dtype_and_serve_training(monkeypatch):
    from zoo.data import color
    from zoo.runtime import constants

    constants._make.cache_clear()
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():  # first made under inference mode (an evaluation)...
        color.split_lab(x)
    made = []
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or pytest.fail("torch.tensor per call"))
    y = x.clone().requires_grad_()
    l, ab = color.split_lab(y)  # ...then used in a training step: no new tensor, and backward works
    (l.sum() + ab.sum()).backward()
    assert made == [] and torch.isfinite(y.grad).all()
    monkeypatch.undo()
    assert constants.constant((1.0, 2.0), "cpu") is constants.constant((1.0, 2.0), CPU)
    assert constants.constant((1.0, 2.0), "cpu", torch.float64).dtype == torch.float64


# -- mixed precision --------------------------------------------------------------------------------------------

class Lin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))


class RecordingSGD(torch.optim.SGD):
    def step(self, closure=None):
        SEEN["autocast_in_step"].append(torch.is_autocast_enabled("cpu"))
        return super().step(closure)


class Fp16Recipe(Recipe):
    def start_stage(self, stage):
        self.optimizers["g"] = RecordingSGD(self.model.parameters(), lr=0.1)
        self.schedulers["g"] = torch.optim.lr_scheduler.StepLR(self.optimizers["g"], step_size=1, gamma=0.5)

    def training_step(self, batch, stage, step):
        with self.autocast():  # backward_step called inside autocast, as zhang used to
            loss = (self.model.w * batch["k"]).sum()
            loss.register_hook(lambda g: SEEN["autocast_in_backward"].append(torch.is_autocast_enabled("cpu")))
            return {"loss": self.backward_step(loss, "g")}


def test_fp16_scaler_skips_do_not_step_the_scheduler_and_the_scaler_is_checkpointed():
    SEEN["autocast_in_backward"].clear(), SEEN["autocast_in_step"].clear()
    model = Lin()
    recipe = Fp16Recipe(model, None, TrainContext(device=CPU, total_steps=4, precision="fp16"))
    recipe.start_stage(Stage("main"))
    recipe.training_step({"k": torch.ones(3)}, None, 0)  # finite gradients: a real step
    sched = recipe.schedulers["g"]
    assert sched.last_epoch == 1 and recipe._scalers["g"].get_scale() == 65536.0
    w = model.w.detach().clone()
    recipe.training_step({"k": torch.full((3,), 1e35)}, None, 1)  # scaled gradients overflow: skipped
    assert torch.equal(model.w.detach(), w)  # no update...
    assert sched.last_epoch == 1  # ...and no scheduler step
    assert recipe._scalers["g"].get_scale() == 32768.0
    # backward and the optimiser step ran outside autocast (the scaler's skipped step never calls opt.step)
    assert SEEN["autocast_in_backward"] == [False, False] and SEEN["autocast_in_step"] == [False]
    state = recipe.state_dict()
    assert state["scalers"]["g"]["scale"] == 32768.0
    again = Fp16Recipe(Lin(), None, TrainContext(device=CPU, total_steps=4, precision="fp16"))
    again.start_stage(Stage("main"))
    again.load_state_dict(state)
    assert again._scalers["g"].get_scale() == 32768.0  # an fp16 resume continues with the same scale


def test_zhang_runs_backward_and_the_optimiser_step_outside_autocast():
    from zoo.plugins.registry import get_registry

    entry = get_registry().get("zhang")
    cfg = entry.make_config("tiny")
    model = entry.build(cfg)
    recipe = entry.recipe(model, cfg, TrainContext(device=CPU, total_steps=2, precision="bf16"))
    recipe.start_stage(recipe.stages[0])
    seen = []
    real = recipe.backward_step
    recipe.backward_step = lambda loss, name, **kw: seen.append(torch.is_autocast_enabled("cpu")) or real(loss, name)
    rgb = torch.rand(2, 3, 48, 48)
    from zoo.data.color import split_lab

    l, ab = split_lab(rgb)
    recipe.training_step({"l": l, "ab": ab, "rgb": rgb}, recipe.stages[0], 0)
    assert seen == [False]


# -- config checks --------------------------------------------------------------------------------------------

def test_pix2pix_refuses_a_patch_its_depth_cannot_take_before_anything_is_built(data, tmp_path):
    from zoo.plugins.registry import get_registry
    from zoo.training.loop import train

    entry = get_registry().get("pix2pix")
    bad = entry.make_config("paper", {"patch_size": 64})
    with pytest.raises(ZooError, match=r"patch_size 64 does not fit depth 8 .*set depth = 6 for 64 px patches"):
        train(dataclasses.replace(entry, build=None), bad, data, steps=1, out_dir=tmp_path / "r", device=CPU)
    for preset in entry.presets:
        entry.recipe.check_config(entry.make_config(preset))
    with pytest.raises(ZooError, match="multiple of 32"):
        entry.recipe.check_config(entry.make_config("tiny", {"patch_size": 33}))


def test_the_paper_suite_plans_pix2pix_at_a_consistent_depth(tmp_path):
    from zoo.harness.bench import plan_bench
    from zoo.harness.suite import load_suite
    from zoo.plugins.registry import get_registry

    suite = load_suite("paper")
    plan = plan_bench(suite, registry=get_registry(), run_dir=tmp_path / "run", cache=tmp_path / "c")
    job = next(j for j in plan.train_jobs if j.model == "pix2pix")
    assert job.overrides == {"patch_size": 64, "depth": 6}
    bad = suite.replace(overrides={**suite.overrides, "pix2pix": {"patch_size": 64}})
    with pytest.raises(ZooError, match="pix2pix: patch_size 64 does not fit depth 8"):
        plan_bench(bad, registry=get_registry(), run_dir=tmp_path / "run", cache=tmp_path / "c")


# -- determinism and evaluation keys --------------------------------------------------------------------------

def test_deterministic_sets_the_flags_records_the_run_and_keys_it(entry, data, tmp_path):
    from zoo.runtime import determinism
    from zoo.training.loop import TrainSettings, run_key

    try:
        determinism.configure(True, "cuda")
        assert determinism.state() == {"deterministic_algorithms": True, "cudnn_deterministic": True,
                                       "cudnn_benchmark": False}
        determinism.configure(False, "cuda")
        assert determinism.state() == {"deterministic_algorithms": False, "cudnn_deterministic": False,
                                       "cudnn_benchmark": True}
        determinism.configure(False, "cpu")
        assert not any(determinism.state().values())
        from zoo.training.loop import train

        LogWatchingRecipe.ctx_log = tmp_path / "d" / "log.jsonl"
        train(entry, entry.make_config(), data, steps=2, out_dir=tmp_path / "d", device=CPU, seed=3, workers=0,
              progress=False, deterministic=True)
        meta = json.loads((tmp_path / "d" / "model.json").read_text())
        assert meta["deterministic"] is True and any("--deterministic" in n for n in meta["notes"])
    finally:
        determinism.configure(False, "cpu")
    cfg, fp = entry.make_config(), data.fingerprint()
    at = TrainSettings(steps=2, seed=3)
    assert run_key(entry, cfg, fp, at) != run_key(entry, cfg, fp, at.replace(deterministic=True))


def test_cli_has_deterministic_and_dry_run():
    from zoo.cli import cli

    assert {"deterministic", "dry_run"} <= {p.name for p in cli.commands["bench"].params}
    assert "deterministic" in {p.name for p in cli.commands["train"].params}


def test_evaluation_keys_name_the_device_and_backend(tmp_path):
    from zoo.harness.bench import plan_bench
    from zoo.harness.jobs import run_eval_job, set_eval_device
    from zoo.harness.suite import load_suite
    from zoo.metrics.pixel import backend_on
    from zoo.plugins.registry import get_registry

    suite = load_suite("smoke")
    kw = dict(registry=get_registry(), run_dir=tmp_path / "run", cache=tmp_path / "c")
    cpu, cuda = plan_bench(suite, **kw), plan_bench(suite, eval_device="cuda", **kw)
    cpu_keys, cuda_keys = [j.key for j in cpu.eval_jobs], [j.key for j in cuda.eval_jobs]
    assert len(set(cpu_keys)) == len(cpu_keys) and not set(cpu_keys) & set(cuda_keys)
    assert {j.device for j in cuda.eval_jobs} == {"cuda"} and backend_on("cuda") == "torch"
    set_eval_device(cuda, "cpu")
    assert [j.key for j in cuda.eval_jobs] == cpu_keys  # the key depends on nothing else that differs
    train_keys = [j.key for j in plan_bench(suite, eval_device="cuda", **kw).train_jobs]
    assert train_keys == [j.key for j in cpu.train_jobs]  # trained models are shared across devices
    job = next(j for j in plan_bench(suite, eval_device="cuda", **kw).eval_jobs if j.stage == "sr")
    with pytest.raises(ZooError, match="keyed for cuda asked to run on cpu"):
        run_eval_job(job, cache=tmp_path / "c", device=torch.device("cpu"))
    assert not (tmp_path / "c").exists()
