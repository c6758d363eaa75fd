"""Section 5: images/s the training loader delivers (default worker count) vs what a training step consumes."""

from __future__ import annotations

import time

from common import Row, best_time, train_data_spec
from models import StepRunner

CASES = (  # (model, preset, precision): the main job's presets and sr-classic's EDSR
    ("edsr", "tiny", "fp32"),
    ("srgan", "tiny", "fp32"),
    ("zhang", "tiny", "fp32"),
    ("pix2pix", "tiny", "fp32"),
    ("edsr", "paper", "bf16"),
)


def loader_throughput() -> list[Row]:
    from zoo.data import make_train_loader, resolve_dataset
    from zoo.registry import get_registry
    from zoo.training import default_workers

    data = train_data_spec()
    dataset = resolve_dataset(data)
    workers = default_workers()
    rows = []
    for name, preset, precision in CASES:
        entry = get_registry().get(name)
        config = entry.make_config(preset, {"scale": 2} if entry.task == "sr" else {})
        batch = int(config.batch_size)
        scale = 2
        loader = make_train_loader(dataset, task=entry.task, patch_size=int(config.patch_size), scale=scale,
                                   batch_size=batch, seed=0, workers=workers, steps=41)
        it = iter(loader)
        next(it)
        t0 = time.perf_counter()
        for _ in range(40):
            next(it)
        delivered = 40 * batch / (time.perf_counter() - t0)
        runner = StepRunner(entry, config, batch, precision=precision)
        consumed = batch / best_time(runner.step, repeat=3)
        rows.append(Row("loader", f"{name} {preset} ({precision}; {config.patch_size}px x {batch}, x{scale}): loader "
                                  f"img/s ({workers} workers) vs step img/s", f"{delivered:.0f} img/s",
                        f"{consumed:.0f} img/s", delivered / consumed, "loader faster than the step (ratio > 1)",
                        ok=delivered > consumed,
                        note=f"in-process loading adds {100 * consumed / delivered:.0f}% to each step"
                        if workers == 0 else ""))
    return rows
