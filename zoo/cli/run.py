"""``zoo run``: colorize and upscale the user's own photographs (:mod:`zoo.harness.apply`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from zoo.cli import completion as complete
from zoo.cli.options import checkpoint_scale, cli_registry, offline_option
from zoo.errors import ZooError
from zoo.store.runs import model_key

# Function-level imports: torch loads when the command runs, so `zoo --help` stays fast.


@click.command("run")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--colorizer", "col_spec", metavar="NAME|CHECKPOINT",
              shell_complete=complete.models("colorizer", files=True),
              help="Colorizer: a name (a baseline, or a model --run trained) or a checkpoint (.safetensors file, "
                   "run folder, hf-hub:ORG/REPO).")
@click.option("--sr", "sr_spec", metavar="NAME|CHECKPOINT", shell_complete=complete.models("sr", files=True),
              help="SR model: a name or a checkpoint, as for --colorizer.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A bench run directory: model names resolve to the checkpoints it trained.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="SR scale (default: the run's or 2).")
@click.option("--preview", is_flag=True, help="Also write <name>_preview.png: gray input beside the output.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them).")
@click.option("--tile", type=click.IntRange(16), default=256, show_default=True, help="SR tile size in input pixels.")
@click.option("--color-size", type=click.IntRange(16), default=512, show_default=True,
              help="Longest side the colorizer works at; its colour is upsampled onto the full-size lightness.")
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when available).")
@offline_option
def run_cmd(inputs, out_dir, col_spec, sr_spec, run_dir, scale, preview, overwrite, tile, color_size, device):
    """Colorize and upscale your own photographs (files or folders) with trained models.

    Each input is used as grayscale. Large images are processed in overlapping tiles and streamed into the
    output, so memory stays bounded. Outputs mirror the input folders; an input file is never replaced, even
    with -o the input folder. Unreadable files are skipped and named; existing outputs (and previews) are
    kept unless --overwrite.
    """
    from zoo.harness.apply import RunOptions, collect_inputs, run_pipeline
    from zoo.harness.evaluate import load_model
    from zoo.runtime.device import pick_device

    if not col_spec and not sr_spec:
        raise click.UsageError("give --colorizer, --sr or both")
    dev = pick_device(device)
    registry = cli_registry()
    run_models = {}
    if run_dir:
        from zoo.store.runs import read_run_meta

        meta = read_run_meta(Path(run_dir))
        run_models = meta.get("models", {})
        if scale is None:
            scale = (meta.get("suite", {}).get("scales") or [2])[0]
    scale = scale or checkpoint_scale(sr_spec) or 2

    def resolve(spec, task):
        if spec is None:
            return None
        key = model_key(spec, scale)
        if key in run_models:
            spec = run_models[key]["checkpoint"]
        elif run_dir and spec in registry and registry.get(spec).trainable:
            raise ZooError(f"run {run_dir} has no trained '{spec}' at x{scale} "
                           f"(it has: {', '.join(sorted(run_models)) or 'none'})")
        return load_model(spec, task, scale=scale, device=dev, registry=registry).module

    files = collect_inputs(list(inputs))
    for reason in files.skipped:
        warnings.warn(reason, stacklevel=1)
    colorizer, sr = resolve(col_spec, "colorizer"), resolve(sr_spec, "sr")
    summary = run_pipeline(files, Path(out_dir), colorizer=colorizer, sr=sr, device=dev,
                           options=RunOptions(color_size=color_size, tile=tile, preview=preview,
                                              overwrite=overwrite), log=click.echo, skipped=files.skipped)
    click.echo(f"{len(summary.written)} written to {out_dir}, {len(summary.skipped)} skipped")
