"""Section 2: training-step and inference throughput of every model's presets, and EDSR against this
machine's convolution peak; what channels_last, bf16 autocast and torch.compile change; `zoo train` end to
end against the bare step."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common import Row, best_time, interleaved_best, interleaved_times, median_time, train_data_spec

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
    from zoo.data.color import split_lab

    rgb = torch.rand(batch, 3, p, p, generator=g).to(device)
    l, ab = split_lab(rgb)
    return {"rgb": rgb, "l": l, "ab": ab}


class StepRunner:
    """One model's recipe, set up for its last (most complete) stage, stepping on a fixed batch.

    ``channels_last=None`` takes the training loop's default for the device, as `zoo train` does.
    """

    def __init__(self, entry, config, batch: int, *, precision: str = "fp32", channels_last: bool | None = None,
                 compile_model: bool = False, device=torch.device("cpu")):
        from zoo.plugins.recipe import TrainContext
        from zoo.training.loop import default_channels_last, stage_plan

        if channels_last is None:
            channels_last = default_channels_last(device)
        self.model = entry.build(config).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ctx = TrainContext(device=device, total_steps=1000, precision=precision)
        self.recipe = entry.recipe(self.model, config, self.ctx)
        self.recipe.aux.to(device)
        if channels_last:
            self.recipe.aux.to(memory_format=torch.channels_last)
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
    from zoo.plugins.registry import get_registry

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
                t_inf = best_time(lambda model=model, x=x: model(x), repeat=3)
            shape = f"{config.patch_size}px x {batch}"
            rows.append(Row("models", f"{entry.name} {preset}: train step ({shape}, stage {runner.stage.name}) / "
                                      f"inference ({side}x{side} in)",
                            f"{batch / t_step:.1f} img/s train", f"{1 / t_inf:.2f} img/s infer",
                            note=f"{t_step:.3f} s/step, {1e3 * t_inf:.0f} ms/image"))
    return rows


class ConvPeak:
    """A 64->64 3x3 convolution (float32, batch 16, 48x48: EDSR's body) in both memory formats.

    ``block(fmt)`` runs it back to back for about ``seconds``: its rate is what the machine sustains over
    a span as long as a training step. The fastest single call (the burst rate) is higher on this host,
    and is reported beside it.
    """

    FLOPS = 2 * 16 * 64 * 64 * 9 * 48 * 48

    def __init__(self, seconds: float = 1.0):
        g = torch.Generator().manual_seed(0)
        w, self.b = torch.randn(64, 64, 3, 3, generator=g), torch.randn(64, generator=g)
        x = torch.randn(16, 64, 48, 48, generator=g)
        cl = torch.channels_last
        self.inputs = {"contiguous": (x, w), "channels_last": (x.contiguous(memory_format=cl),
                                                                w.contiguous(memory_format=cl))}
        self.burst = {fmt: 0.0 for fmt in self.inputs}
        self.calls = max(5, round(seconds / max(1e-4, best_time(lambda: self.call("contiguous"), repeat=3))))

    def call(self, fmt: str) -> float:
        x, w = self.inputs[fmt]
        t0 = time.perf_counter()
        F.conv2d(x, w, self.b, padding=1)
        t = time.perf_counter() - t0
        self.burst[fmt] = max(self.burst[fmt], self.FLOPS / t / 1e9)
        return t

    def block(self, fmt: str) -> None:
        for _ in range(self.calls):
            self.call(fmt)


class BareEDSR(nn.Module):
    """EDSR-baseline in plain PyTorch, none of zoo's code: the issue's "bare PyTorch step" to compare with.

    Same layers and shapes as the plugin (mean shift, head, 16 residual blocks, closing conv, x2 pixel
    shuffle, tail); its FLOP count is checked against the plugin's.
    """

    def __init__(self, n_blocks: int = 16, f: int = 64, scale: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, f, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU(inplace=True),
                                                  nn.Conv2d(f, f, 3, padding=1)) for _ in range(n_blocks))
        self.body_end = nn.Conv2d(f, f, 3, padding=1)
        self.up = nn.Sequential(nn.Conv2d(f, f * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.tail = nn.Conv2d(f, 3, 3, padding=1)
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))

    def forward(self, x):
        h = self.head(x - self.mean)
        y = h
        for block in self.blocks:
            y = y + block(y)
        y = self.body_end(y) + h
        return self.tail(self.up(y)) + self.mean


class BareStep:
    def __init__(self, batch: dict[str, torch.Tensor], scale: int, channels_last: bool):
        torch.manual_seed(0)
        self.model = BareEDSR(scale=scale)
        self.lr, self.hr = batch["lr"], batch["hr"]
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.lr = self.lr.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = F.l1_loss(self.model(self.lr), self.hr)
        loss.backward()
        self.opt.step()


def step_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def edsr_figures(train_steps: tuple[int, int] = (5, 25), rounds: int = 5) -> list[Row]:
    """EDSR-baseline's training step against the conv peak, a bare PyTorch step, the memory formats, bf16,
    torch.compile, and `zoo train` end to end. Everything compared is timed in alternation in one run."""
    from zoo.data.datasets import resolve_dataset
    from zoo.plugins.registry import get_registry
    from zoo.training.loop import default_channels_last, train

    cpu = torch.device("cpu")
    entry = get_registry().get("edsr", "sr")
    config = entry.make_config("paper", {"scale": 2})  # 16 blocks, 64 features, 48x48 LR patches, batch 16
    batch = int(config.batch_size)
    cl = default_channels_last(cpu)
    fmt, other = ("channels_last", "contiguous") if cl else ("contiguous", "channels_last")
    peak = ConvPeak()
    zoo_step = StepRunner(entry, config, batch, channels_last=cl)
    other_step = StepRunner(entry, config, batch, channels_last=not cl)
    bf16_step = StepRunner(entry, config, batch, channels_last=cl, precision="bf16")
    bare = BareStep(zoo_step.batch, int(config.scale), channels_last=cl)
    flops, bare_flops = step_flops(zoo_step.step), step_flops(bare.step)
    times = interleaved_times({
        "zoo": zoo_step.step, "other": other_step.step, "bare": bare.step, "bf16": bf16_step.step,
        "peak channels_last": lambda: peak.block("channels_last"),
        "peak contiguous": lambda: peak.block("contiguous"),
    }, rounds=rounds)
    best = {k: min(v) for k, v in times.items()}
    sustained = {f: peak.calls * peak.FLOPS / best[f"peak {f}"] / 1e9 for f in peak.inputs}
    peak_fmt = max(sustained, key=sustained.get)
    top, burst = sustained[peak_fmt], max(peak.burst.values())
    achieved, bare_rate = flops / best["zoo"] / 1e9, bare_flops / best["bare"] / 1e9
    timing = f"best of {rounds}, timed in alternation"
    rows = [
        Row("models", "conv3x3 64->64 forward peak, float32 (batch 16, 48x48), sustained over ~1 s",
            f"{top:.0f} GFLOP/s", note=f"best layout {peak_fmt}; sustained " +
            ", ".join(f"{f} {v:.0f}" for f, v in sustained.items()) + "; fastest single call " +
            ", ".join(f"{f} {v:.0f}" for f, v in peak.burst.items()) + f" GFLOP/s; {peak.calls} calls per block"),
        Row("models", f"edsr paper train step (batch {batch}, {config.patch_size}x{config.patch_size} LR, x2, "
                      f"{fmt}): GFLOP/s vs the conv peak", f"{achieved:.0f} GFLOP/s", f"{top:.0f} GFLOP/s",
            achieved / top, ">= 75% of peak", ok=achieved / top >= 0.75,
            note=f"{flops / 1e9:.0f} GFLOP per step (forward + backward, FlopCounterMode), {best['zoo']:.2f} s/step "
                 f"({timing}); against the fastest single conv call: {achieved / burst:.0%}"),
        Row("models", f"bare PyTorch EDSR step (same layers, L1, Adam; {fmt}): GFLOP/s vs the conv peak",
            f"{bare_rate:.0f} GFLOP/s", f"{top:.0f} GFLOP/s", bare_rate / top,
            note=f"{bare_flops / 1e9:.0f} GFLOP per step, {best['bare']:.2f} s/step; zoo's step runs at "
                 f"{achieved / bare_rate:.2f}x the bare step's rate"),
        Row("models", f"edsr paper step, {fmt} (the loop's default on CPU) over {other}",
            f"{best['other'] / best['zoo']:.2f}x", note=f"{best['other']:.2f} s/step in {other}"),
        Row("models", "edsr paper step, bf16 autocast: speed-up over float32", f"{best['zoo'] / best['bf16']:.2f}x",
            note=f"{best['bf16']:.2f} s/step ({fmt})"),
    ]
    try:
        t0 = time.perf_counter()
        compiled = StepRunner(entry, config, batch, channels_last=cl, compile_model=True)
        compiled.step()  # compiles
        t_compile = time.perf_counter() - t0
        pair = interleaved_best({"zoo": zoo_step.step, "compiled": compiled.step}, rounds=3, warmup=0)
        rows.append(Row("models", "edsr paper step, torch.compile: speed-up over eager",
                        f"{pair['zoo'] / pair['compiled']:.2f}x",
                        note=f"{pair['compiled']:.2f} s/step; first step (compiling) {t_compile:.0f} s"))
    except Exception as exc:  # inductor needs a C++ compiler; report rather than fail the suite
        rows.append(Row("models", "edsr paper step, torch.compile", "failed", note=str(exc).splitlines()[0][:200]))

    data = train_data_spec()
    dataset = resolve_dataset(data)
    walls = []
    for steps in train_steps:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(entry, config, dataset, steps=steps, out_dir=Path(tmp), device=cpu, data_scale=2,
                  checkpoint_every=10, progress=False)
            walls.append(time.perf_counter() - t0)
    per_step = (walls[1] - walls[0]) / (train_steps[1] - train_steps[0])
    # the loop's figure is an average over steps, so it is compared with the bare step's typical (median)
    # time, not its best
    t_typical = median_time(zoo_step.step, repeat=7)
    rows.append(Row("models", "zoo train end to end (edsr paper, data loading, log, checkpoint every 10 steps): "
                              "steps/s vs the bare step", f"{1 / per_step:.3f} steps/s",
                    f"{1 / t_typical:.3f} steps/s", t_typical / per_step, ">= 90% of the bare step",
                    ok=t_typical / per_step >= 0.9,
                    note=f"steady state from {train_steps[0]}- and {train_steps[1]}-step runs "
                         f"({walls[0]:.1f} s, {walls[1]:.1f} s) on {Path(data).name}; bare step median of 7 "
                         f"{t_typical:.2f} s, best {best['zoo']:.2f} s"))
    return rows
