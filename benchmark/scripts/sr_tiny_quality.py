"""Train one SR model's tiny preset at x2 on samples:train and print its Y-PSNR on samples:test.

    python benchmark/scripts/sr_tiny_quality.py srgan 1500 blocks=4

Used to size the default suite (does each trained SR model beat bicubic's 31.59 dB?).
"""

import sys
import tempfile
import time

import torch

from zoo.data.datasets import resolve_dataset
from zoo.harness.evaluate import LoadedModel, evaluate
from zoo.plugins.registry import get_registry
from zoo.store.checkpoint import load_checkpoint
from zoo.training.loop import train


def main() -> None:
    name, steps = sys.argv[1], int(sys.argv[2])
    overrides = dict(a.split("=", 1) for a in sys.argv[3:])
    entry = get_registry().get(name, "sr")
    config = entry.make_config("tiny", {"scale": 2, **overrides})
    t0 = time.perf_counter()
    result = train(entry, config, resolve_dataset("samples:train"), steps=steps, out_dir=tempfile.mkdtemp(),
                   device=torch.device("cpu"), data_scale=2, progress=False, checkpoint_every=10**9)
    seconds = time.perf_counter() - t0
    model = load_checkpoint(result.checkpoint).model
    report = evaluate(dataset=resolve_dataset("samples:test"), scale=2, device=torch.device("cpu"),
                      sr=LoadedModel(name, "sr", model, str(result.checkpoint)), metrics=["psnr"])
    print(f"{name} {steps} steps {overrides}: trained in {seconds:.0f} s, Y-PSNR {report.results[0].value:.3f} dB")


if __name__ == "__main__":
    main()
