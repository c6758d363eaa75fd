"""A colorizer's training loss against a colour-blind predictor's loss on the very same batches.

A colorizer's per-step loss moves with the batch: a batch of saturated flowers costs far more than one of
grey sky, whatever the model has learned. Averaged over a tenth of a run that still leaves a few per cent of
drift (two vgg_decoder runs with different settings and the same seed logged the same deciles to 1 %), so
"the loss fell 3 % from the first tenth to the last" can be the data and not the model. This script replays
the run's batch stream (the loader depends only on the seed and the run's data settings) and scores each
batch with a predictor that knows no image:

- ``mse`` / ``l1`` losses on ab / ``ab_scale``: the gray prediction, ab = 0 (the ``gray`` baseline);
- ``ce`` (zhang's class-rebalanced cross-entropy): the training prior predicted at every pixel, the best a
  model can do without looking at the image, with the run's own bins, prior and rebalancing weights.

It prints, per tenth of the run, the logged loss, the reference's, and their ratio::

    python benchmark/scripts/colorizer_loss_reference.py RUN_DIR [--data DATA] [--key mse|l1|ce]

RUN_DIR is a ``zoo train`` output folder (or a bench's cached training folder) holding ``model.json``,
``model.safetensors`` and ``log.jsonl``. A ratio below 1 is what the model learned beyond the reference;
a ratio that falls from the first tenth to the last is learning that the batch mix cannot explain.

When the run validated (``val.jsonl``, :mod:`zoo.training.validation`), it also prints each held-out loss, the same
reference on the same held-out crops (recorded in ``val.jsonl`` by runs since validation format 3; for older
runs recomputed, with ``--val DIR`` naming the held-out images when ``model.json`` names only their folder),
and the mean of the validations in the first and the last tenth of the run.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from zoo.data.abbins import soft_encode_sparse
from zoo.data.color import split_lab
from zoo.data.datasets import resolve_dataset
from zoo.data.imageio import DataWarning
from zoo.data.loader import make_train_loader
from zoo.errors import ZooError
from zoo.store.checkpoint import read_meta
from zoo.store.runs import VAL_LOG, first_and_last_tenth, read_log, reference_lines
from zoo.training.validation import VAL_CROPS, Validator


def reference_loss(rgb: torch.Tensor, key: str, cfg: dict, state: dict | None = None) -> float:
    """The colour-blind reference's loss on one batch of RGB in [0, 1]; ``state``: zhang's buffers for ``ce``."""
    _, ab = split_lab(rgb)
    if key != "ce":
        scaled = ab / cfg.get("ab_scale", 110.0)
        return float(scaled.pow(2).mean() if key == "mse" else scaled.abs().mean())
    bins, rebalance = state["bins"].float(), state["rebalance"].float()
    log_prior = state["prior"].double().clamp_min(1e-12).log().float()
    target = F.avg_pool2d(ab, 4)  # zhang's targets at its 1/4 output resolution
    idx, wts = soft_encode_sparse(target, bins, k=cfg.get("encode_k", 5), sigma=cfg.get("encode_sigma", 5.0))
    ce = -(wts * log_prior[idx]).sum(1)
    nearest = idx.gather(1, wts.argmax(1, keepdim=True)).squeeze(1)
    return float((rebalance[nearest] * ce).mean())


def reference_losses(run: Path, key: str, data: str | None = None) -> list[float]:
    """The reference's loss on every batch of the run, replayed from its seed and data settings.

    ``data``: the training data (``zoo train`` records it in ``model.json``; a bench's cached run does not).
    """
    meta = read_meta(run / "model.safetensors")
    cfg = meta["config"]
    spec = data or meta.get("dataset")
    if spec is None:
        raise ValueError(f"{run}: model.json does not name its training data; pass --data")
    dataset = resolve_dataset(spec)
    if dataset.fingerprint() != meta["data"]:
        raise ValueError(f"{run}: the run trained on other data than {spec} (fingerprint differs)")
    with warnings.catch_warnings():  # the loader's warnings about small images were shown when the run trained
        warnings.simplefilter("ignore", DataWarning)
        stream = make_train_loader(dataset, task="colorizer", patch_size=cfg["patch_size"],
                                   scale=meta["data_scale"], batch_size=cfg["batch_size"], seed=meta["seed"],
                                   workers=0, steps=meta["steps"], uint8=True)
        state = load_file(str(run / "model.safetensors")) if key == "ce" else None
        return [reference_loss(batch["rgb"].float() / 255.0, key, cfg, state) for batch in stream]


def held_out_reference(run: Path, key: str, val: str, meta: dict) -> float:
    """The reference's loss on the run's held-out crops (the very crops :mod:`zoo.training.validation` scored);
    ``meta``: the run's ``model.json``."""
    cfg, recorded = meta["config"], meta["validation"]
    dataset = resolve_dataset(val)
    if dataset.fingerprint() != recorded["data"]:
        raise ValueError(f"{run}: the run validated on other images than {val} (fingerprint differs)")
    validator = Validator(dataset, recorded["every"], run / VAL_LOG, task="colorizer", patch_size=cfg["patch_size"],
                          scale=meta["data_scale"], batch_size=cfg["batch_size"], total_steps=meta["target_steps"])
    state = load_file(str(run / "model.safetensors")) if key == "ce" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        batches = validator.batches()
    total = sum(reference_loss(b["rgb"].float() / 255.0, key, cfg, state) * len(b["rgb"]) for b in batches)
    return total / sum(len(b["rgb"]) for b in batches)


def print_held_out(run: Path, key: str, val: str | None) -> None:
    rows = [r for r in read_log(run, VAL_LOG) if key in r]
    if not rows:
        return
    meta = read_meta(run / "model.safetensors")
    steps, recorded = meta["target_steps"], meta["validation"]
    ref = next((r[key] for r in reference_lines(rows) if key in r), None)  # recorded since validation format 3
    spec = val or recorded.get("name")
    try:
        if ref is None and spec:
            ref = held_out_reference(run, key, spec, meta)
    except (ValueError, ZooError) as e:
        print(f"held-out reference: not computed ({e}); pass --val DIR", file=sys.stderr)
    print(f"held-out {key} ({recorded.get('name', '?')}, {VAL_CROPS} fixed crops, every {recorded['every']} steps)"
          + (f"; reference {ref:.4g}" if ref else ""))
    for r in rows:
        print(f"  step {r['step']:>6}  {r[key]:<8.4g}" + (f"  ratio {r[key] / ref:.3f}" if ref else ""))
    tenths = first_and_last_tenth(rows, key, steps)
    if tenths is not None:
        a, b = tenths
        print(f"held-out fall first->last tenth: {a:.4g} -> {b:.4g}, {100 * (1 - b / a):.1f} %")


def tenths(values: list[float]) -> list[float]:
    n = len(values)
    return [sum(values[i * n // 10:(i + 1) * n // 10]) / max(1, (i + 1) * n // 10 - i * n // 10) for i in range(10)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--data", help="the run's training data (default: the one model.json names)")
    p.add_argument("--key", choices=("mse", "l1", "ce"), help="logged loss to compare (default: the one logged)")
    p.add_argument("--val", help="the run's held-out images (default: the folder name model.json records)")
    args = p.parse_args(argv)
    missing = [n for n in ("model.safetensors", "model.json", "log.jsonl") if not (args.run / n).is_file()]
    if missing:
        print(f"{args.run}: not a training folder (no {', '.join(missing)})", file=sys.stderr)
        return 2
    rows = read_log(args.run)
    key = args.key or next((k for k in ("ce", "mse", "l1") if k in rows[0]), None)
    if key is None or not all(key in r for r in rows):
        print(f"{args.run}: no '{args.key or 'ce/mse/l1'}' loss in every line of log.jsonl", file=sys.stderr)
        return 2
    logged = [r[key] for r in rows]
    if len(logged) < 10:
        print(f"{args.run}: {len(logged)} logged steps; tenths of a run need at least 10", file=sys.stderr)
        return 2
    try:
        ref = reference_losses(args.run, key, args.data)
    except (ValueError, ZooError) as e:
        print(e, file=sys.stderr)
        return 2
    if len(ref) != len(logged):
        print(f"{args.run}: the log has {len(logged)} steps, the replayed stream {len(ref)}", file=sys.stderr)
        return 2
    lt, rt = tenths(logged), tenths(ref)
    print(f"{args.run.name}: {key}, {len(logged)} steps; per tenth of the run")
    print("tenth  logged    reference  ratio")
    for i, (a, b) in enumerate(zip(lt, rt)):
        print(f"{i + 1:>5}  {a:<8.4g}  {b:<9.4g}  {a / b:.3f}")
    print(f"logged fall first->last tenth: {100 * (1 - lt[-1] / lt[0]):.1f} %; "
          f"ratio {lt[0] / rt[0]:.3f} -> {lt[-1] / rt[-1]:.3f}")
    print_held_out(args.run, key, args.val)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
