"""The shared training loop: checkpoints, exact resumption, the non-finite guard, stage plans."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from zoo.errors import ZooError
from zoo.plugins.recipe import Recipe, Stage
from zoo.training.loop import TrainSettings, default_channels_last, resolve_precision, run_key, stage_plan, train


@dataclass
class NetConfig:
    scale: int = 2
    batch_size: int = 2
    patch_size: int = 12
    lr: float = 1e-2
    fail_at: int = -1  # make the loss NaN from this step on (tests the guard)


# Ctrl-C simulation: not part of the config, so the interrupted and the resumed run share one run key.
INTERRUPT_AT = {"step": -1}
OUTPUT_DTYPES: list[torch.dtype] = []  # dtype of the convolutions' output inside the recipe's autocast, per step
LAYOUTS: list[tuple[bool, bool]] = []  # (input, first conv weight) in channels_last, per step


class Net(zoo.SuperResolver):
    def __init__(self, cfg):
        super().__init__(cfg.scale)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Dropout(0.1),  # exercises the checkpointed RNG
                                        torch.nn.Conv2d(8, 3 * cfg.scale**2, 3, padding=1))
        self.up = torch.nn.PixelShuffle(cfg.scale)

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear") + self.up(self.body(x))


class TwoStageRecipe(Recipe):
    stages = (Stage("first", 0.5), Stage("second", 0.5))

    def start_stage(self, stage):
        lr = self.config.lr if stage.name == "first" else self.config.lr / 10
        self.optimizers["g"] = torch.optim.Adam(self.model.parameters(), lr=lr)

    def training_step(self, batch, stage, step):
        if step == INTERRUPT_AT["step"]:
            raise KeyboardInterrupt
        with self.autocast():
            out = self.model(batch["lr"])
            OUTPUT_DTYPES.append(self.model.body(batch["lr"]).dtype)
        cl = torch.channels_last
        LAYOUTS.append((batch["lr"].is_contiguous(memory_format=cl),
                        self.model.body[0].weight.is_contiguous(memory_format=cl)))
        loss = F.l1_loss(out.float(), batch["hr"])
        if 0 <= self.config.fail_at <= step:
            loss = loss * float("nan")
        return {"l1": self.backward_step(loss, "g")}


ENTRY = zoo.ModelEntry(name="loopnet", build=Net, config=NetConfig, summary="test", recipe=TwoStageRecipe)


@pytest.fixture(scope="module")
def registry():
    import types

    plugin = types.ModuleType("loop_plugin")
    plugin.register_sr_models = zoo.hookimpl(lambda register: register(ENTRY))
    return zoo.load_registry(entry_points=False, plugins=[("loop_plugin", plugin)])


@pytest.fixture(scope="module")
def entry(registry):
    return registry.get("loopnet")


@pytest.fixture(scope="module")
def data():
    from zoo.data.datasets import resolve_dataset

    return resolve_dataset("samples:train")


def _train(entry, data, out, steps=12, **cfg):
    return train(entry, entry.make_config(overrides=cfg), data, steps=steps, out_dir=out,
                 device=torch.device("cpu"), seed=3, checkpoint_every=3, workers=0, progress=False)


def test_checkpoint_and_sidecar(entry, data, tmp_path):
    result = _train(entry, data, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert result.steps == 12 and meta["steps"] == 12 and meta["model"] == "loopnet"
    assert meta["config"]["patch_size"] == 12 and meta["data"] == data.fingerprint()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))
    assert [r["stage"] for r in log] == ["first"] * 6 + ["second"] * 6
    # A finished run is found, not retrained; from its sidecar alone: the model is not even built, and the
    # optimiser state (state.pt, only needed to resume) may be gone.
    weights = (tmp_path / "run" / "model.safetensors").read_bytes()
    (tmp_path / "run" / "state.pt").unlink()
    unbuildable = dataclasses.replace(entry, build=None)
    again = _train(unbuildable, data, tmp_path / "run")
    assert not again.trained and again.steps == 12 and again.notes == meta["notes"]
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == weights
    # a longer run with the same settings is another run (another key): it trains
    assert _train(entry, data, tmp_path / "run13", steps=13).trained


def test_interrupted_run_resumes_to_identical_weights(entry, data, tmp_path):
    _train(entry, data, tmp_path / "straight")
    INTERRUPT_AT["step"] = 7  # inside the second stage; the last checkpoint is step 6
    try:
        with pytest.raises(KeyboardInterrupt):
            _train(entry, data, tmp_path / "cut")
    finally:
        INTERRUPT_AT["step"] = -1
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["step"] == 6
    resumed = _train(entry, data, tmp_path / "cut")
    assert resumed.resumed_from == 6 and resumed.steps == 12
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == list(range(1, 13))


class _Crash(BaseException):
    """A process death at a chosen write: nothing after it runs (not even except-Exception handlers)."""


def test_a_crash_between_any_two_checkpoint_writes_resumes_to_identical_weights(registry, entry, data, tmp_path,
                                                                               monkeypatch):
    import zoo.store.checkpoint as ckpt
    import zoo.store.files as files
    from zoo.store.checkpoint import load_checkpoint

    def patch(write):  # the weights go through zoo.store.checkpoint's name, the JSON through zoo.store.files'
        monkeypatch.setattr(ckpt, "atomic_write_bytes", write)
        monkeypatch.setattr(files, "atomic_write_bytes", write)

    def run(out, **kw):
        return train(entry, entry.make_config(), data, steps=6, out_dir=out, device=torch.device("cpu"), seed=3,
                     checkpoint_every=2, workers=0, progress=False, **kw)

    run(tmp_path / "straight")
    final = load_file(str(tmp_path / "straight" / "model.safetensors"))
    real_write = ckpt.atomic_write_bytes
    calls = []

    def counting(path, data_):
        calls.append(Path(path).name)
        real_write(path, data_)

    patch(counting)
    run(tmp_path / "count")
    writes = list(calls)
    # checkpoints at steps 2, 3 (end of stage "first"), 4 and 6, three files each
    assert writes == ["state.pt", "model.safetensors", "model.json"] * 4
    for k in range(len(writes)):
        out = tmp_path / f"crash{k}"
        calls.clear()

        def crashing(path, data_, k=k):
            if len(calls) == k:
                raise _Crash
            calls.append(path)
            real_write(path, data_)

        patch(crashing)
        with pytest.raises(_Crash):
            run(out)
        patch(real_write)
        if (out / "model.json").is_file():  # a pair torn by the crash is refused, never used
            meta = json.loads((out / "model.json").read_text())
            stamp = ckpt._header(out / "model.safetensors")[0]
            if stamp["steps"] != str(meta["steps"]):
                with pytest.raises(ZooError, match="torn"):
                    load_checkpoint(out / "model.safetensors", registry)
        run(out)  # the same command again
        resumed = load_file(str(out / "model.safetensors"))
        assert resumed.keys() == final.keys()
        assert all(torch.equal(resumed[n], final[n]) for n in final), f"crash before write {k} ({writes[k]})"
        assert load_checkpoint(out / "model.safetensors", registry).meta["steps"] == 6
        log = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
        assert log == list(range(1, 7))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(entry, data, tmp_path):
    with pytest.raises(ZooError, match="became nan"):
        _train(entry, data, tmp_path / "run", fail_at=4)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 3
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_stage_plan_splits_steps_and_skips_empty_stages():
    plan = stage_plan((Stage("a", 0.0), Stage("b", 1), Stage("c", 3)), 10)
    assert [(s.name, a, b) for s, a, b in plan] == [("b", 0, 2), ("c", 2, 10)]


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ZooError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ZooError, match="precision must be one of"):
        resolve_precision("fp8", cpu)


def test_bf16_autocast_on_cpu_is_recorded_and_keyed(entry, data, tmp_path):
    OUTPUT_DTYPES.clear()
    result = train(entry, entry.make_config(), data, steps=4, out_dir=tmp_path / "bf16", device=torch.device("cpu"),
                   seed=3, checkpoint_every=2, workers=0, progress=False, precision="bf16")
    assert OUTPUT_DTYPES == [torch.bfloat16] * 4
    meta = json.loads((tmp_path / "bf16" / "model.json").read_text())
    assert meta["precision"] == "bf16"
    assert any("bf16 autocast" in n for n in result.notes) and meta["notes"] == result.notes
    # the weights and the optimiser stay float32
    assert {t.dtype for t in load_file(str(result.checkpoint)).values()} == {torch.float32}
    OUTPUT_DTYPES.clear()
    train(entry, entry.make_config(), data, steps=4, out_dir=tmp_path / "auto", device=torch.device("cpu"), seed=3,
          checkpoint_every=2, workers=0, progress=False)
    assert OUTPUT_DTYPES == [torch.float32] * 4
    auto_meta = json.loads((tmp_path / "auto" / "model.json").read_text())
    assert auto_meta["precision"] == "fp32" and not any("autocast" in n for n in auto_meta["notes"])
    keys = {p: run_key(entry, entry.make_config(), data.fingerprint(), TrainSettings(steps=4, seed=3, precision=p))
            for p in ("auto", "fp32", "bf16")}
    assert len(set(keys.values())) == 3  # a run trained in another precision is never reused


def test_suite_rejects_unknown_precision(tmp_path):
    from zoo.harness.suite import load_suite

    path = tmp_path / "s.toml"
    path.write_text('precision = "fp8"\n')
    with pytest.raises(ZooError, match="precision must be one of"):
        load_suite(str(path))


def test_cli_precision_choices_match_the_loop():
    from zoo.cli import cli
    from zoo.training.loop import PRECISIONS

    for command in ("train", "bench"):
        option = next(p for p in cli.commands[command].params if p.name == "precision")
        assert tuple(option.type.choices) == PRECISIONS


def test_channels_last_is_the_cpu_default_and_an_explicit_layout_is_keyed(entry, data, tmp_path):
    cpu = torch.device("cpu")
    assert default_channels_last(cpu)
    for name, flag in (("default", None), ("contiguous", False)):
        LAYOUTS.clear()
        train(entry, entry.make_config(), data, steps=4, out_dir=tmp_path / name, device=cpu, seed=3,
              checkpoint_every=2, workers=0, progress=False, channels_last=flag)
        expected = flag is None
        assert LAYOUTS == [(expected, expected)] * 4  # batches and weights alike
        assert json.loads((tmp_path / name / "model.json").read_text())["channels_last"] is expected
    # dropout masks follow the memory layout, so an explicit layout never reuses another layout's run
    keys = {flag: run_key(entry, entry.make_config(), data.fingerprint(),
                          TrainSettings(steps=4, seed=3, channels_last=flag)) for flag in (None, True, False)}
    assert len(set(keys.values())) == 3


def test_linear_decay_resumes_where_it_stopped():
    def rates(opt, sched, n):
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = zoo.linear_decay(opt, 10, 0.6)
    whole = rates(opt, sched, 10)
    assert whole == pytest.approx([1.0] * 6 + [0.8, 0.6, 0.4, 0.2])
    q = torch.nn.Parameter(torch.zeros(1))
    opt2 = torch.optim.SGD([q], lr=1.0)
    sched2 = zoo.linear_decay(opt2, 10, 0.6)
    first = rates(opt2, sched2, 7)
    # As the loop resumes: a fresh optimiser and schedule, then both states from the checkpoint.
    opt3 = torch.optim.SGD([q], lr=1.0)
    sched3 = zoo.linear_decay(opt3, 10, 0.6)
    opt3.load_state_dict(opt2.state_dict())
    sched3.load_state_dict(sched2.state_dict())
    assert first + rates(opt3, sched3, 3) == pytest.approx(whole)
