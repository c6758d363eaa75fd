"""Section 5: images/s the training loader delivers (default worker count) vs what a training step consumes."""

from __future__ import annotations

import time

from common import Row, best_time, interleaved_times, train_data_spec
from models import StepRunner

PATCHES_PER_IMAGE = 4  # the loop's default

CASES = (  # (model, preset, precision): the main job's presets and sr-classic's EDSR
    ("edsr", "tiny", "fp32"),
    ("srgan", "tiny", "fp32"),
    ("zhang", "tiny", "fp32"),
    ("pix2pix", "tiny", "fp32"),
    ("edsr", "paper", "bf16"),
)


def loader_throughput() -> list[Row]:
    from zoo.data.datasets import resolve_dataset
    from zoo.data.loader import make_train_loader
    from zoo.plugins.registry import get_registry
    from zoo.training.loop import default_workers

    data = train_data_spec()
    dataset = resolve_dataset(data)
    workers = default_workers()
    rows = []
    for name, preset, precision in CASES:
        entry = get_registry().get(name)
        config = entry.make_config(preset, {"scale": 2} if entry.task == "sr" else {})
        batch = int(config.batch_size)
        scale = 2
        # one epoch decodes every image once (the first, cold); after it the decoded-image cache serves them
        per_epoch = -(-len(dataset) * PATCHES_PER_IMAGE // batch)
        colds = []
        for seed in range(3):  # a cold pass happens once per loader: best of three fresh loaders
            loader = make_train_loader(dataset, task=entry.task, patch_size=int(config.patch_size), scale=scale,
                                       batch_size=batch, seed=seed, workers=workers, steps=per_epoch + 41,
                                       patches_per_image=PATCHES_PER_IMAGE)
            it = iter(loader)
            next(it)  # the first batch pays one-time costs; batches 1..n_cold are timed cold
            n_cold = max(1, min(40, per_epoch - 1))
            t0 = time.perf_counter()
            for _ in range(n_cold):
                next(it)
            colds.append(n_cold * batch / (time.perf_counter() - t0))
        for _ in range(per_epoch - 1 - n_cold):  # the rest of the last loader's first epoch
            next(it)
        t0 = time.perf_counter()
        for _ in range(40):
            next(it)
        warm = 40 * batch / (time.perf_counter() - t0)
        cold = max(colds)
        runner = StepRunner(entry, config, batch, precision=precision)
        t_step = best_time(runner.step, repeat=3)
        consumed = batch / t_step
        looped = fixed = None
        # every batch of the first epoch decodes new files, so its first steps are as cold as the rest
        in_loop = min(per_epoch, max(8, int(15 / t_step)))
        if workers == 0:
            looped, fixed = _first_epoch_in_the_loop(runner, dataset, entry.task, config, batch, scale, in_loop)
        rows.append(Row("loader", f"{name} {preset} ({precision}; {config.patch_size}px x {batch}, x{scale}): loader "
                                  f"img/s ({workers} workers), first epoch / later epochs, vs step img/s",
                        f"{cold:.0f} / {warm:.0f} img/s", f"{consumed:.0f} img/s", cold / consumed,
                        "loader faster than the step (ratio > 1)", ok=cold > consumed,
                        note=f"ratio from the first epoch, which decodes each of the {len(dataset)} images once "
                             f"(best of 3 fresh loaders: {', '.join(f'{c:.0f}' for c in colds)} img/s); "
                             f"later epochs: {warm / consumed:.1f}x"
                             + (f"; in-process loading adds {100 * consumed / cold:.0f}% to each step in the first "
                                f"epoch, {100 * consumed / warm:.0f}% after" if workers == 0 else "")
                             + (f"; in the loop, the first {in_loop} steps of the first epoch take "
                                f"{looped:.2f} s against {fixed:.2f} s for the steps alone "
                                f"({looped / fixed:.2f}x)" if looped is not None else "")))
    return rows


def _first_epoch_in_the_loop(runner, dataset, task, config, batch, scale, steps, rounds=2) -> tuple[float, float]:
    """Seconds for the first epoch as the loop runs it in-process (load, convert, step), and for the same
    number of steps on one fixed batch; interleaved, each round with a fresh loader (cold, another seed)."""
    import torch

    from zoo.data.loader import make_train_loader
    from zoo.training.loop import _to_device

    cpu = torch.device("cpu")
    channels_last = next(iter(runner.batch.values())).is_contiguous(memory_format=torch.channels_last)

    def looped():
        loader = make_train_loader(dataset, task=task, patch_size=int(config.patch_size), scale=scale,
                                   batch_size=batch, seed=next(seeds), workers=0, steps=steps)
        for raw in loader:
            runner.recipe.training_step(_to_device(raw, cpu, task, channels_last), runner.stage, runner.step_index)

    def alone():
        for _ in range(steps):
            runner.step()

    seeds = iter(range(1, 100))
    times = interleaved_times({"loop": looped, "alone": alone}, rounds=rounds, warmup=0)
    return min(times["loop"]), min(times["alone"])
