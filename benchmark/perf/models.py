"""Section 2: training-step and inference throughput of every model's presets, and EDSR against this
machine's convolution peak; what channels_last, bf16 autocast and torch.compile change; `zoo train` end to
end against the bare step."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import Row, best_time, median_time, train_data_spec

INFER_SIDE = {"sr": 128, "colorizer": 256}  # input side for inference timing (SR: LR pixels)
PAPER_TIMING_BATCH = 4  # paper presets are timed at this batch (or their own, if smaller): images/s on a
# CPU barely depends on the batch, and some paper batches take minutes per step here


def make_batch(task: str, config, batch: int, device="cpu") -> dict[str, torch.Tensor]:
    """A training batch of the loop's format at the preset's patch size (random pixels: timing only)."""
    g = torch.Generator().manual_seed(0)
    p = int(config.patch_size)
    if task == "sr":
        s = int(config.scale)
        hr = torch.rand(batch, 3, p * s, p * s, generator=g)
        return {"lr": F.avg_pool2d(hr, s).to(device), "hr": hr.to(device)}
    from zoo.color import split_lab

    rgb = torch.rand(batch, 3, p, p, generator=g).to(device)
    l, ab = split_lab(rgb)
    return {"rgb": rgb, "l": l, "ab": ab}


class StepRunner:
    """One model's recipe, set up for its last (most complete) stage, stepping on a fixed batch."""

    def __init__(self, entry, config, batch: int, *, precision: str = "fp32", channels_last: bool = False,
                 compile_model: bool = False, device=torch.device("cpu")):
        from zoo.recipe import TrainContext
        from zoo.training import stage_plan

        self.model = entry.build(config).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ctx = TrainContext(device=device, total_steps=1000, precision=precision)
        self.recipe = entry.recipe(self.model, config, self.ctx)
        self.recipe.aux.to(device)
        self.batch = make_batch(entry.task, config, batch, device)
        if channels_last:
            self.batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in self.batch.items()}
        self.recipe.prepare([self.batch, self.batch])
        stage, first, _ = stage_plan(tuple(self.recipe.stages), 1000)[-1]
        self.stage, self.step_index = stage, first
        if compile_model:
            self.recipe.model = torch.compile(self.model)
        self.recipe.start_stage(stage)
        self.model.train()

    def step(self):
        return self.recipe.training_step(self.batch, self.stage, self.step_index)


def model_throughput(presets=("tiny", "paper")) -> list[Row]:
    from zoo.registry import get_registry

    rows = []
    for entry in get_registry().entries():
        if not entry.trainable:
            continue
        for preset in presets:
            if preset not in entry.presets:
                continue
            config = entry.make_config(preset, {"scale": 2} if entry.task == "sr" else {})
            batch = int(config.batch_size) if preset == "tiny" else min(int(config.batch_size), PAPER_TIMING_BATCH)
            runner = StepRunner(entry, config, batch)
            t_step = best_time(runner.step, repeat=2 if preset == "paper" else 3)
            model = runner.model.eval()
            side = INFER_SIDE[entry.task]
            x = torch.rand(1, 3, side, side) if entry.task == "sr" else torch.rand(1, 1, side, side) * 100
            with torch.no_grad():
                t_inf = best_time(lambda: model(x), repeat=3)
            shape = f"{config.patch_size}px x {batch}"
            rows.append(Row("models", f"{entry.name} {preset}: train step ({shape}, stage {runner.stage.name}) / "
                                      f"inference ({side}x{side} in)",
                            f"{batch / t_step:.1f} img/s train", f"{1 / t_inf:.2f} img/s infer",
                            note=f"{t_step:.3f} s/step, {1e3 * t_inf:.0f} ms/image"))
    return rows


def conv_peak_gflops() -> tuple[float, str]:
    """The best forward GFLOP/s of a 64->64 3x3 convolution (float32) over a few input sizes."""
    best, where = 0.0, ""
    w = torch.randn(64, 64, 3, 3)
    b = torch.randn(64)
    for n, side in ((16, 48), (16, 96), (4, 192)):
        x = torch.randn(n, 64, side, side)
        t = best_time(lambda: F.conv2d(x, w, b, padding=1), repeat=5, warmup=2)
        g = 2 * n * 64 * 64 * 9 * side * side / t / 1e9
        if g > best:
            best, where = g, f"batch {n}, {side}x{side}"
    return best, where


def step_flops(runner: StepRunner) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        runner.step()
    return float(counter.get_total_flops())


def edsr_figures(train_steps: tuple[int, int] = (5, 25)) -> list[Row]:
    from zoo.data import resolve_dataset
    from zoo.registry import get_registry
    from zoo.training import train

    entry = get_registry().get("edsr", "sr")
    config = entry.make_config("paper", {"scale": 2})  # 16 blocks, 64 features, 48x48 LR patches, batch 16
    batch = int(config.batch_size)
    peak, where = conv_peak_gflops()
    runner = StepRunner(entry, config, batch)
    flops = step_flops(runner)
    t_bare = best_time(runner.step, repeat=3)
    achieved = flops / t_bare / 1e9
    rows = [Row("models", "conv3x3 64->64 forward peak, float32", f"{peak:.0f} GFLOP/s", note=where),
            Row("models", f"edsr paper train step (batch {batch}, {config.patch_size}x{config.patch_size} LR, x2): "
                          "GFLOP/s vs the conv peak", f"{achieved:.0f} GFLOP/s", f"{peak:.0f} GFLOP/s",
                achieved / peak, ">= 75% of peak", ok=achieved / peak >= 0.75,
                note=f"{flops / 1e9:.0f} GFLOP per step (forward + backward, FlopCounterMode), {t_bare:.2f} s/step")]

    def variant(label, **kw):
        t_compile = 0.0
        t0 = time.perf_counter()
        r = StepRunner(entry, config, batch, **kw)
        if kw.get("compile_model"):
            r.step()  # compiles
            t_compile = time.perf_counter() - t0
        t = best_time(r.step, repeat=3)
        note = f"{t:.2f} s/step" + (f"; first step (compiling) {t_compile:.0f} s" if t_compile else "")
        return Row("models", f"edsr paper step, {label}: speed-up over float32", f"{t_bare / t:.2f}x", note=note)

    rows.append(variant("channels_last", channels_last=True))
    rows.append(variant("bf16 autocast", precision="bf16"))
    try:
        rows.append(variant("torch.compile", compile_model=True))
    except Exception as exc:  # inductor needs a C++ compiler; report rather than fail the suite
        rows.append(Row("models", "edsr paper step, torch.compile", "failed", note=str(exc).splitlines()[0][:200]))

    data = train_data_spec()
    dataset = resolve_dataset(data)
    walls = []
    for steps in train_steps:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(entry, config, dataset, steps=steps, out_dir=Path(tmp), device=torch.device("cpu"),
                  data_scale=2, checkpoint_every=10, progress=False)
            walls.append(time.perf_counter() - t0)
    per_step = (walls[1] - walls[0]) / (train_steps[1] - train_steps[0])
    # the loop's figure is an average over steps, so it is compared with the bare step's typical (median)
    # time, not its best
    t_typical = median_time(runner.step, repeat=7)
    rows.append(Row("models", "zoo train end to end (edsr paper, data loading, log, checkpoint every 10 steps): "
                              "steps/s vs the bare step", f"{1 / per_step:.3f} steps/s",
                    f"{1 / t_typical:.3f} steps/s", t_typical / per_step, ">= 90% of the bare step",
                    ok=t_typical / per_step >= 0.9,
                    note=f"steady state from {train_steps[0]}- and {train_steps[1]}-step runs "
                         f"({walls[0]:.1f} s, {walls[1]:.1f} s) on {Path(data).name}; bare step median of 7 "
                         f"{t_typical:.2f} s, best {t_bare:.2f} s"))
    return rows
