"""Training one model and scoring models: ``zoo train`` and ``zoo eval``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from zoo.cli import completion as complete
from zoo.cli.options import (
    checkpoint_scale,
    cli_registry,
    deterministic_option,
    echo_downloads,
    offline_option,
    precision_option,
    split_csv,
)
from zoo.errors import ZooError, one_line

# Function-level imports: torch and the training loop load when the command runs, so `zoo --help` stays fast.


@click.command("train")
@click.option("--model", "model_name", required=True, shell_complete=complete.models(),
              help="A registered trainable model (see 'zoo list').")
@click.option("--preset", default=None, shell_complete=complete.presets,
              help="Named configuration, e.g. paper or tiny (default: the config defaults).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field; repeatable.")
@click.option("--data", "data_spec", default="samples:train", show_default=True, metavar="DIR|samples[:train]",
              help="Training images (colour HR).")
@click.option("--scale", type=click.IntRange(1, 16), default=2, show_default=True,
              help="SR scale; colorizers learn on images downscaled by it (the pipeline's LR).")
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when available).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: runs/train/<model>-<key>). This run's is resumed; one holding "
                   "another run or other files is refused unless --force.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=100, show_default=True)
@click.option("--val", "val_spec", default=None, metavar="DIR|samples[:test]",
              help="Held-out images: the model's losses on fixed crops of them go to val.jsonl every --val-every "
                   "steps (not used for training).")
@click.option("--val-every", type=click.IntRange(1), default=None,
              help="Steps between validations (default: 20 in a run).")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Data loader processes (default: none on 2 CPU cores, the cores per GPU on CUDA).")
@click.option("--force", is_flag=True, help="Train in --out even if it holds another run or other files.")
@precision_option
@offline_option
@deterministic_option
def train_cmd(model_name, preset, overrides, data_spec, scale, steps, seed, device, out_dir, checkpoint_every,
              val_spec, val_every, workers, force, precision, deterministic):
    """Train one model and write a checkpoint that 'zoo eval' scores.

    Checkpoints are written every --checkpoint-every steps and at the end; rerunning the same command after
    an interruption continues where it stopped.
    """
    from zoo.data.datasets import resolve_dataset
    from zoo.harness.conformance import fail_fast
    from zoo.harness.failures import log_traceback
    from zoo.runtime.device import pick_device
    from zoo.store.download import DOWNLOADED
    from zoo.training.loop import train
    from zoo.training.settings import TrainSettings, run_key

    entry = cli_registry().get(model_name)
    extra = dict(o.split("=", 1) for o in overrides if "=" in o)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise click.UsageError(f"--set takes KEY=VALUE, got '{bad[0]}'")
    if entry.task == "sr":
        extra.setdefault("scale", scale)
    config = entry.make_config(preset, extra)
    dev = pick_device(device)
    if entry.recipe is not None:
        fail_fast(entry, config, dev)  # before any data is read: the one line 'zoo check' prints
    dataset = resolve_dataset(data_spec)
    fetched_before = len(DOWNLOADED)
    val_data = resolve_dataset(val_spec) if val_spec else None
    settings = TrainSettings(steps=steps, seed=seed, data_scale=scale, checkpoint_every=checkpoint_every,
                             precision=precision or "auto", deterministic=deterministic, workers=workers,
                             val=val_data, val_every=val_every or 0)
    key = run_key(entry, config, dataset.fingerprint(), settings, val_data and val_data.fingerprint())
    out = Path(out_dir) if out_dir else Path("runs") / "train" / f"{entry.name}-{key}"
    try:
        result = train(entry, config, dataset, settings, out_dir=out, device=dev, force=force,
                       extra_meta={"preset": preset, "dataset": dataset.name})
    except ZooError:
        raise
    except Exception as exc:  # the plugin's own error: one line here, the traceback in the run folder
        log = out / "errors.log" if out.is_dir() else Path(tempfile.mkdtemp(prefix="zoo-train-")) / "errors.log"
        log_traceback(log, f"training {entry.name}", exc)
        raise ZooError(f"training {entry.name} failed: {one_line(exc)}; the traceback is in {log}") from None
    if not result.trained:
        click.echo(f"already trained ({result.steps} steps): {result.checkpoint}")
    else:
        resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
        click.echo(f"trained {entry.name} for {result.steps} steps in {result.seconds:.1f} s on {dev}{resumed}")
    for note in result.notes:
        click.echo(f"note: {note}")
    echo_downloads(DOWNLOADED[fetched_before:])
    click.echo(f"checkpoint: {result.checkpoint}")


@click.command("eval")
@click.option("--sr", "sr_spec", metavar="NAME|CHECKPOINT", shell_complete=complete.models("sr", files=True),
              help="SR model: a baseline name, or a checkpoint (.safetensors file, run folder, hf-hub:ORG/REPO).")
@click.option("--colorizer", "col_spec", metavar="NAME|CHECKPOINT",
              shell_complete=complete.models("colorizer", files=True),
              help="Colorizer: a baseline name or a checkpoint (as for --sr).")
@click.option("--data", "data_spec", required=True, metavar="DIR|samples[:test]",
              help="Test images (colour HR ground truth): a folder, or the embedded 'samples' set.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="SR scale (default: 2, or the checkpoint's).")
@click.option("--metrics", callback=split_csv, multiple=True, default=("psnr,ssim",), show_default="psnr,ssim",
              shell_complete=complete.metrics,
              help="Comma-separated metric names, or the option repeated: any registered metric, the core ones "
                   "and plugins' ('zoo metrics' lists them all).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@offline_option
def eval_cmd(sr_spec, col_spec, data_spec, scale, metrics, device, as_json):
    """Score an SR model, a colorizer, or both as a pipeline, on a test set.

    Convention (EDSR/SRCNN tables): HR cropped to a multiple of the scale, LR by MATLAB-compatible bicubic,
    PSNR/SSIM on the Y channel of BT.601 YCbCr with SCALE pixels shaved from each border, 8-bit outputs.
    A colorizer alone is scored at LR resolution against the colour LR image (shave 0). A metric whose
    pretrained weights are missing fetches them first (see 'zoo weights'), unless --offline.
    """
    from zoo.data.datasets import resolve_dataset
    from zoo.harness.evaluate import evaluate, load_model
    from zoo.runtime.device import pick_device

    if not sr_spec and not col_spec:
        raise click.UsageError("give --sr, --colorizer or both")
    dev = pick_device(device)
    registry = cli_registry()
    if scale is None:
        scale = checkpoint_scale(sr_spec) or 2
    dataset = resolve_dataset(data_spec)
    sr = load_model(sr_spec, "sr", scale=scale, device=dev, registry=registry) if sr_spec else None
    col = load_model(col_spec, "colorizer", scale=scale, device=dev, registry=registry) if col_spec else None
    report = evaluate(dataset=dataset, scale=scale, device=dev, colorizer=col, sr=sr, metrics=metrics)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))  # strict JSON: to_dict has no NaN
        return
    from tabulate import tabulate

    click.echo(f"{report.mode}: {', '.join(f'{k}={v}' for k, v in report.models.items())}; "
               f"data {report.dataset} (n={report.n_images}), x{report.scale}, device {dev}")
    rows = []
    notes = []
    for r in report.results:
        if r.available:
            value = f"{r.value:.4f}" + (f" ± {r.std:.4f}" if r.std is not None and r.info.name == "kid" else "")
            if r.note:
                notes.append(f"{r.info.name}: {r.note}")
                value += f" [{len(notes)}]"
        elif r.failed:
            notes.append(f"{r.info.name}: failed: {r.failed}")
            value = f"failed [{len(notes)}]"
        else:
            notes.append(f"{r.info.name}: {r.to_dict()['unavailable']}")
            value = f"n/a [{len(notes)}]"
        weights = ", ".join(f"{k}@{v}" for k, v in r.weights.items())
        rows.append([f"{r.info.name} {r.info.arrow}", value, r.info.unit, r.info.convention, weights])
    click.echo(tabulate(rows, headers=["metric", "value", "unit", "convention", "weights"]))
    for i, note in enumerate(notes, 1):
        click.echo(f"[{i}] {note}")
    for s in report.skipped:
        click.echo(f"skipped: {s}")
    echo_downloads(report.downloaded)
