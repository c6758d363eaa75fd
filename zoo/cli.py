"""The ``zoo`` command line. User errors print one line and exit with code 2."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource

from zoo import completion as complete
from zoo.errors import ZooError

# Only click and the standard library at import time: torch loads inside the commands that need it, so
# --help, `zoo list` (from its cache, zoo.listing) and shell completion stay fast.


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One readable line per warning; tracebacks are for bugs, not for a broken plugin or a bad file.
    print(f"zoo: warning: {message}", file=sys.stderr)


def _registry():
    from zoo.registry import get_registry

    registry = get_registry()
    for message in registry.conflict_messages():
        click.echo(f"zoo: error: {message}", err=True)
    return registry


def _set_offline(ctx, param, value):
    # An environment variable, so data-loader workers, subprocesses and Ray tasks see it too.
    if value:
        os.environ["ZOO_OFFLINE"] = "1"
    return value


offline_option = click.option(
    "--offline", is_flag=True, expose_value=False, callback=_set_offline,
    help="Never download weight files (as ZOO_OFFLINE=1): a missing one makes its metric n/a or its loss "
         "term off.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="zoo", prog_name="zoo")
def cli():
    """A model zoo and benchmark for colorization and super-resolution.

    Models come from plugins (entry-point group 'zoo'); the built-ins register the same way.
    """


LIST_KEYS = ("name", "task", "params", "distribution", "version", "presets", "trainable", "summary", "reference")


@cli.command("list")
@click.argument("pattern", required=False, shell_complete=complete.models())
@click.option("--task", type=click.Choice(["colorizer", "sr"]), help="Only models of this task.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (documented in the README).")
@click.option("--refresh", is_flag=True, help="Import every plugin again instead of reading the cached listing.")
def list_models(pattern, task, as_json, refresh):
    """List registered models, optionally filtered by a glob PATTERN such as 'edsr*'.

    Parameter counts are for each model's default (paper) configuration. The listing is cached until a
    plugin (or zoo) changes, so only the first run after a change imports the plugins and torch.
    """
    import fnmatch

    from zoo.listing import load_listing

    listing = load_listing(refresh)
    for message in listing.warnings:
        warnings.warn(message)
    for message in listing.conflicts:
        click.echo(f"zoo: error: {message}", err=True)
    chosen = [r for r in listing.models
              if (task is None or r["task"] == task) and (pattern is None or fnmatch.fnmatchcase(r["name"], pattern))]
    if listing.count(chosen):
        listing.save()
    for row in chosen:
        if row.get("build_error"):
            warnings.warn(row["build_error"])
    rows = [{k: r[k] for k in LIST_KEYS} for r in chosen]
    if as_json:
        click.echo(json.dumps({"models": rows}, indent=2))
    else:
        from tabulate import tabulate

        table = [[r["name"], r["task"], _fmt_params(r["params"]), f"{r['distribution']} {r['version']}".strip(),
                  r["summary"]] for r in rows]
        if table:
            click.echo(tabulate(table, headers=["name", "task", "params", "plugin", "summary"]))
        else:
            click.echo("no models match" + (f" '{pattern}'" if pattern else ""))
    if listing.conflicts:
        sys.exit(1)


def _fmt_params(n):
    if n is None:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else str(n))


@cli.command("check")
@click.argument("patterns", nargs=-1, metavar="[NAME|GLOB]...", shell_complete=complete.models())
@click.option("--only", "only", callback=lambda c, p, v: _split_csv(c, p, v), default=None, metavar="CHECKS",
              help="Comma-separated subset of: contract, presets, forward, train, save_load, seeded, params.")
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when available).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@offline_option
def check_cmd(patterns, only, device, as_json):
    """Run the plugin conformance checks on models (default: every registered model).

    Each model must build at every preset, keep its task's tensor contract on odd sizes, train every recipe
    stage for a few steps with finite losses, save and load to identical outputs, train identically from the
    same seed and count the parameters 'zoo list' shows. Exits 1 if any check fails.
    """
    from zoo.device import pick_device
    from zoo.testing import CHECKS, check_models, format_results, results_json

    registry = _registry()
    dev = pick_device(device)

    def progress(result):
        if not as_json:
            click.echo(f"  {result.model:14s} {result.check:10s} {result.status} ({result.seconds:.1f} s)", err=True)

    results = check_models(patterns or ("*",), registry=registry, device=dev, checks=only or CHECKS,
                           on_result=progress)
    if as_json:
        click.echo(json.dumps(results_json(results), indent=2))
    else:
        click.echo(format_results(results))
    if any(r.status == "fail" for r in results):
        sys.exit(1)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List plugin distributions: version, where they load from, models, load errors.

    Installing a plugin runs its code; restrict loading with ZOO_PLUGINS=dist1,dist2 or
    ZOO_DISABLE_PLUGINS=dist.
    """
    registry = _registry()
    rows = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "location": p.location,
             "models": p.models, "metrics": p.metrics, "errors": p.errors} for p in registry.plugins]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "conflicts": registry.conflicts}, indent=2))
    else:
        from tabulate import tabulate

        table = [[r["distribution"], r["version"], r["plugin"], ", ".join(r["models"] + r["metrics"]) or "-",
                  "; ".join(r["errors"]) or "ok", r["location"]] for r in rows]
        click.echo(tabulate(table, headers=["distribution", "version", "entry point", "models / metrics",
                                            "status", "location"]))
    if registry.conflicts:
        sys.exit(1)


@cli.command("metrics")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def metrics_cmd(as_json):
    """List registered metrics (core and plugins): direction, unit, plugin, summary."""
    registry = _registry()
    rows = [{"name": m.name, "higher_is_better": m.higher_is_better, "ranked": m.ranked, "unit": m.unit,
             "distribution": m.distribution, "version": m.version, "summary": m.summary} for m in registry.metrics()]
    if as_json:
        click.echo(json.dumps({"metrics": rows}, indent=2))
        return
    from tabulate import tabulate

    table = [[r["name"], ("↑" if r["higher_is_better"] else "↓") if r["ranked"] else "-", r["unit"] or "-",
              f"{r['distribution']} {r['version']}".strip(), r["summary"]] for r in rows]
    click.echo(tabulate(table, headers=["name", "better", "unit", "plugin", "summary"]))


def _echo_downloads(downloaded, err=False):
    from zoo.download import Downloaded
    from zoo.weights import hub_dir_display

    for d in downloaded:
        d = d if isinstance(d, Downloaded) else Downloaded(**d)
        click.echo(f"downloaded: {d.note()}, sha256 verified, into {hub_dir_display()}", err=err)


def _split_csv(ctx, param, value):
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@cli.command("eval")
@click.option("--sr", "sr_spec", metavar="NAME|CHECKPOINT", shell_complete=complete.models("sr", files=True),
              help="SR model: a baseline name, or a checkpoint (.safetensors file, run folder, hf-hub:ORG/REPO).")
@click.option("--colorizer", "col_spec", metavar="NAME|CHECKPOINT",
              shell_complete=complete.models("colorizer", files=True),
              help="Colorizer: a baseline name or a checkpoint (as for --sr).")
@click.option("--data", "data_spec", required=True, metavar="DIR|samples[:test]",
              help="Test images (colour HR ground truth): a folder, or the embedded 'samples' set.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="SR scale (default: 2, or the checkpoint's).")
@click.option("--metrics", callback=_split_csv, default="psnr,ssim", show_default=True, shell_complete=complete.metrics,
              help="Comma-separated metric names (see 'zoo metrics'): psnr, ssim, psnr_rgb, ssim_rgb, lpips, fid, "
                   "kid, colorfulness, colorfulness_gt, and any a plugin registers.")
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
    from zoo.datasets import resolve_dataset
    from zoo.device import pick_device
    from zoo.evaluate import evaluate, load_model

    if not sr_spec and not col_spec:
        raise click.UsageError("give --sr, --colorizer or both")
    dev = pick_device(device)
    registry = _registry()
    if scale is None:
        scale = _checkpoint_scale(sr_spec) or 2
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
    _echo_downloads(report.downloaded)


def _checkpoint_scale(spec):
    from zoo.locate import looks_like_checkpoint

    if not spec or not looks_like_checkpoint(spec) or spec.endswith((".pth", ".pt")):
        return None
    from zoo.checkpoint import read_meta
    from zoo.locate import locate

    return read_meta(locate(spec)).get("config", {}).get("scale")


# zoo.training.PRECISIONS, spelled out so that building the CLI does not import torch
precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
    help="Training precision: auto = mixed on CUDA, float32 on a CPU; bf16 = bfloat16 autocast "
         "(fast on CPUs with AMX / AVX512-BF16); fp16 = CUDA only.")


deterministic_option = click.option(
    "--deterministic", is_flag=True,
    help="Deterministic algorithms and fixed cuDNN choices: on CUDA, the same numbers every run (slower). "
         "CPU runs are reproducible without it.")


@cli.command("train")
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
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Data loader processes (default: none on 2 CPU cores, the cores per GPU on CUDA).")
@click.option("--force", is_flag=True, help="Train in --out even if it holds another run or other files.")
@precision_option
@offline_option
@deterministic_option
def train_cmd(model_name, preset, overrides, data_spec, scale, steps, seed, device, out_dir, checkpoint_every,
              workers, force, precision, deterministic):
    """Train one model and write a checkpoint that 'zoo eval' scores.

    Checkpoints are written every --checkpoint-every steps and at the end; rerunning the same command after
    an interruption continues where it stopped.
    """
    from zoo.datasets import resolve_dataset
    from zoo.device import pick_device
    from zoo.download import DOWNLOADED
    from zoo.training import run_key, train

    entry = _registry().get(model_name)
    extra = dict(o.split("=", 1) for o in overrides if "=" in o)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise click.UsageError(f"--set takes KEY=VALUE, got '{bad[0]}'")
    if entry.task == "sr":
        extra.setdefault("scale", scale)
    config = entry.make_config(preset, extra)
    dataset = resolve_dataset(data_spec)
    dev = pick_device(device)
    precision = precision or "auto"
    fetched_before = len(DOWNLOADED)
    key = run_key(entry, config, dataset.fingerprint(), seed, steps, scale, precision, deterministic=deterministic)
    out = Path(out_dir) if out_dir else Path("runs") / "train" / f"{entry.name}-{key}"
    result = train(entry, config, dataset, steps=steps, out_dir=out, device=dev, seed=seed, data_scale=scale,
                   checkpoint_every=checkpoint_every, workers=workers, precision=precision, force=force,
                   deterministic=deterministic, extra_meta={"preset": preset, "dataset": dataset.name})
    if not result.trained:
        click.echo(f"already trained ({result.steps} steps): {result.checkpoint}")
    else:
        resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
        click.echo(f"trained {entry.name} for {result.steps} steps in {result.seconds:.1f} s on {dev}{resumed}")
    for note in result.notes:
        click.echo(f"note: {note}")
    _echo_downloads(DOWNLOADED[fetched_before:])
    click.echo(f"checkpoint: {result.checkpoint}")


@cli.command("weights")
@click.argument("keys", nargs=-1, metavar="[KEY ...]")
@click.option("--download", is_flag=True,
              help="Fetch the missing files (all, or the KEYs) into the hub cache, each verified against its "
                   "published sha256 before it is moved into place.")
@click.option("--check", is_flag=True, help="Verify present files against their published sha256.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@offline_option
def weights_cmd(keys, download, check, as_json):
    """Pretrained weight files any registered model or metric can use (all, or the KEYs), and fetching them.

    Files live in the torch hub cache, $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints),
    under torchvision's and pytorch-fid's names. Metrics and losses also fetch a missing file on first use,
    unless --offline, ZOO_OFFLINE=1 or HF_HUB_OFFLINE=1. ZOO_WEIGHTS_MIRROR=<base URL or directory> fetches
    every file from there instead of upstream (same names, same verification).
    """
    from zoo.weights import check_weight, known_weights, weight_table

    extra = [w for e in _registry().entries() for w in e.weights]
    selected = known_weights(extra, keys)
    failed, downloaded = _download(selected, err=as_json) if download else ([], [])
    if as_json or check or not download:  # after a download, what it did is the report
        rows = weight_table(extra, keys)
        if check:
            status = {w.filename: check_weight(w) for w in selected}
            for row in rows:
                row["check"] = status.get(row["filename"], "")
        if as_json:
            click.echo(json.dumps({"weights": rows, "downloaded": [d.to_dict() for d in downloaded]}, indent=2))
        else:
            _weights_table(rows, check)
    if failed:
        raise ZooError(f"{len(failed)} of {len(selected)} files not downloaded: {', '.join(failed)}")


def _download(selected, err: bool):
    """Fetch each missing file of ``selected``, saying what happened; returns (failed names, Downloaded)."""
    from zoo.download import DOWNLOADED, DownloadError, fetch, offline_reason

    off = offline_reason()
    if off:
        raise ZooError(f"downloads are off ({off}); unset it, or drop --offline, to download")
    failed, before = [], len(DOWNLOADED)
    for w in selected:
        if w.find():
            click.echo(f"present: {w.filename} (kept; --check verifies it)", err=err)
            continue
        n = len(DOWNLOADED)
        try:
            fetch(w)
        except DownloadError as exc:
            failed.append(w.filename)
            click.echo(f"failed: {w.filename}: {exc}", err=err)
            continue
        if len(DOWNLOADED) > n:
            _echo_downloads(DOWNLOADED[n:], err=err)
        else:
            click.echo(f"present: {w.filename} (placed by another process meanwhile)", err=err)
    return failed, DOWNLOADED[before:]


def _weights_table(rows, check):
    from tabulate import tabulate

    headers = ["name", "file", "purpose", "present", "size", "sha256", "path"] + (["check"] if check else [])
    table = [[r["name"], r["filename"], r["purpose"], "yes" if r["present"] else "MISSING",
              _fmt_bytes(r.get("size")), r.get("sha256") or "-", r["path"]] + ([r.get("check", "")] if check else [])
             for r in rows]
    click.echo(tabulate(table, headers=headers))
    missing = [r for r in rows if not r["present"]]
    if missing:
        from zoo.weights import hub_checkpoint_dir

        click.echo(f"\nMissing files go in {hub_checkpoint_dir()} ($TORCH_HOME/hub/checkpoints): "
                   f"'zoo weights --download' fetches them, verified, as does first use unless --offline.")
        for r in missing:
            click.echo(f"  {r['filename']}: {r['source']}")


def _fmt_bytes(n):
    if not n:
        return "-"
    return f"{n / 2**20:.1f} MiB"


@cli.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suites_cmd(as_json):
    """Built-in suites: name, description, the data each needs and whether it is present here.

    Data under $ZOO_DATA is looked for in the folder ZOO_DATA names (from a checkout, by default
    ../shared/data beside it). Any suite's data can be replaced with --data and --test.
    """
    from zoo.suite import load_suite
    from zoo.suitefiles import builtin_suites, data_root, describe

    rows = [describe(name, load_suite(name)) for name in sorted(builtin_suites())]
    root, where = data_root()
    if as_json:
        click.echo(json.dumps({"suites": rows, "zoo_data": str(root) if root else None}, indent=2))
        return
    from tabulate import tabulate

    def data(row):
        return "\n".join(f"{d['role']}: {d['spec']} ({'present' if d['present'] else 'MISSING'})"
                         for d in row["data"])

    table = [[r["name"], r["description"], data(r), "yes" if r["ready"] else "no"] for r in rows]
    click.echo(tabulate(table, headers=["name", "description", "data", "ready"], maxcolwidths=[None, 40, None, None]))
    click.echo(f"\n$ZOO_DATA: {root} ({where})" if root else f"\n$ZOO_DATA: none ({where})")


@cli.command("bench")
@click.option("--suite", "suite_spec", default="default", show_default=True, metavar="NAME|PATH",
              shell_complete=complete.suites, help="A built-in suite (see 'zoo suites') or a TOML file.")
@click.option("--colorizer", "colorizers", multiple=True, metavar="NAMES|GLOB",
              shell_complete=complete.models("colorizer", commas=True),
              help="Colorizers to run (comma-separated or repeated; globs allowed). Default: the suite's.")
@click.option("--sr", "srs", multiple=True, metavar="NAMES|GLOB", shell_complete=complete.models("sr", commas=True),
              help="SR models to run. Default: the suite's.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="Override the suite's scale(s).")
@click.option("--data", "train_data", default=None, metavar="DIR", help="Training images (overrides the suite).")
@click.option("--test", "tests", multiple=True, metavar="DIR", help="Test set(s) (override the suite's).")
@click.option("--preset", default=None, shell_complete=complete.presets,
              help="Model preset for every trained model (tiny, paper, ...).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps per model.")
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when available).")
@click.option("--seed", type=int, default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: runs/<suite>-<timestamp>). A non-empty one is refused unless it holds "
                   "this same bench (the same command again) or --force.")
@click.option("--force", is_flag=True, help="Replace the bench results in a non-empty --out.")
@click.option("--order", type=click.Choice(["color-first", "sr-first", "both"]), default=None,
              help="Colorize then upscale (default), upscale then colorize, or rank both.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Trained models and cached results (default: $ZOO_CACHE or ~/.cache/zoo).")
@click.option("--workers", type=click.IntRange(0), default=None, help="Data loader processes per training.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run jobs in this process, or as Ray tasks (pip install 'zoo[ray]').")
@click.option("--address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
              metavar="local|auto|HOST:PORT|ray://HOST:PORT",
              help="Ray to run on: local = a private Ray instance started for the bench (the default); auto = the "
                   "cluster 'ray start' started on this machine; HOST:PORT = a cluster's GCS; ray://... = Ray Client.")
@click.option("--ray-timeout", type=click.FloatRange(0, min_open=True), default=30, show_default=True,
              metavar="SECONDS", help="How long to wait for the Ray cluster at --address to answer.")
@click.option("--gpus-per-job", type=float, default=None,
              help="GPUs each Ray task asks for (default: 1 when the cluster has GPUs, else 0).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Intra-op threads per job (local executor; Ray runs 1 per task). --threads 1 reproduces a "
                   "Ray run's numbers exactly.")
@precision_option
@offline_option
@deterministic_option
@click.option("--dry-run", is_flag=True,
              help="Print the plan (each job, and which are cached) and a measured estimate of the training time "
                   "on the chosen device; run and write nothing.")
def bench_cmd(suite_spec, colorizers, srs, scale, train_data, tests, preset, steps, device, seed, out_dir, force,
              order, cache_dir, workers, executor, address, ray_timeout, gpus_per_job, threads, precision,
              deterministic, dry_run):
    """Train each selected model once, evaluate every colorizer x SR combination, write leaderboards.

    A grid of C colorizers and S SR models trains C + S models (never C x S); trained models and results
    are cached by content, so rerunning trains nothing, and an interrupted run continues. The reference
    baselines (models with nothing to train) are always included.
    """
    from zoo.bench import configure, run_bench

    registry = _registry()
    suite, col_sel, sr_sel = configure(suite_spec, registry=registry, colorizers=colorizers, srs=srs, scale=scale,
                                       train_data=train_data, tests=tests, preset=preset, steps=steps, seed=seed,
                                       order=order, precision=precision)
    if dry_run:
        from zoo.dryrun import dry_run as run_dry

        run_dry(suite, registry=registry, out=Path(out_dir) if out_dir else None, cache_dir=cache_dir,
                colorizers=col_sel, sr=sr_sel, device=device, workers=workers, deterministic=deterministic,
                executor=executor, log=click.echo)
        return

    from zoo.executors import make_executor

    if threads not in (None, 1) and executor == "ray":
        raise click.UsageError("--threads is for the local executor; Ray runs one thread per task")
    # RAY_ADDRESS counts as --address (Ray's convention, and what 'ray job submit' sets), and says so in errors
    from_env = click.get_current_context().get_parameter_source("address") is ParameterSource.ENVIRONMENT
    runner = make_executor(executor, device=device, workers=workers, address=address, gpus_per_job=gpus_per_job,
                           threads=threads, timeout=ray_timeout,
                           address_source="RAY_ADDRESS" if from_env else "--address")
    result = run_bench(suite, registry=registry, out=Path(out_dir) if out_dir else None, cache_dir=cache_dir,
                       colorizers=col_sel, sr=sr_sel, device=device, workers=workers, executor=runner,
                       log=click.echo, force=force, deterministic=deterministic)
    click.echo(f"done in {result.seconds:.1f} s: {result.trained} of {result.train_jobs} models trained now, "
               f"{result.eval_jobs} evaluations")
    click.echo(f"leaderboard: {result.run_dir / 'leaderboard.md'}")
    if result.failures:
        for line in result.failures:
            click.echo(f"zoo: failed: {line}", err=True)
        click.echo(f"zoo: {len(result.failures)} job(s) failed; every other row was computed. Details: "
                   f"{result.run_dir / 'errors.log'}; after a fix, the same command reruns only what failed",
                   err=True)
        sys.exit(1)


@cli.command("run")
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
    from zoo.apply import RunOptions, collect_inputs, run_pipeline
    from zoo.device import pick_device
    from zoo.evaluate import load_model

    if not col_spec and not sr_spec:
        raise click.UsageError("give --colorizer, --sr or both")
    dev = pick_device(device)
    registry = _registry()
    run_models = {}
    if run_dir:
        from zoo.leaderboard import read_run_meta

        meta = read_run_meta(Path(run_dir))
        run_models = meta.get("models", {})
        if scale is None:
            scale = (meta.get("suite", {}).get("scales") or [2])[0]
    scale = scale or _checkpoint_scale(sr_spec) or 2

    def resolve(spec, task):
        if spec is None:
            return None
        key = f"{spec}@x{scale}"
        if key in run_models:
            spec = run_models[key]["checkpoint"]
        elif run_dir and spec in registry and registry.get(spec).trainable:
            raise ZooError(f"run {run_dir} has no trained '{spec}' at x{scale} "
                           f"(it has: {', '.join(sorted(run_models)) or 'none'})")
        return load_model(spec, task, scale=scale, device=dev, registry=registry).module

    files = collect_inputs(list(inputs))
    for reason in files.skipped:
        warnings.warn(reason)
    colorizer, sr = resolve(col_spec, "colorizer"), resolve(sr_spec, "sr")
    summary = run_pipeline(files, Path(out_dir), colorizer=colorizer, sr=sr, device=dev,
                           options=RunOptions(color_size=color_size, tile=tile, preview=preview,
                                              overwrite=overwrite), log=click.echo, skipped=files.skipped)
    click.echo(f"{len(summary.written)} written to {out_dir}, {len(summary.skipped)} skipped")


@cli.command("push")
@click.argument("source", metavar="CHECKPOINT|RUN_DIR", type=click.Path(exists=True))
@click.argument("repo_id", metavar="ORG/REPO")
@click.option("--model", "model_name", default=None, shell_complete=complete.models(),
              help="The model to push from a bench run that trained several.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="Its scale, if the run trained several.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--message", default=None, help="Commit message (default: says what is pushed).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write the repository's files here and upload nothing (to look at them first).")
def push_cmd(source, repo_id, model_name, scale, private, message, out_dir):
    """Share a trained model on the Hugging Face Hub as ORG/REPO; others load it as hf-hub:ORG/REPO.

    Uploads model.safetensors, model.json (model, config, training data fingerprint, the metrics a bench
    run measured, zoo and plugin versions, command line, git commit, library versions) and a generated model
    card (README.md). CHECKPOINT is a .safetensors file or a training run folder; from a bench run folder the
    card also lists the numbers it measured. Log in first: 'hf auth login', or set HF_TOKEN.
    """
    from zoo import hub
    from zoo.push import prepare, push

    repo_id = hub.check_repo_id(repo_id)
    registry = _registry()
    if out_dir:
        meta = prepare(source, repo_id, Path(out_dir), model=model_name, scale=scale, registry=registry)
        click.echo(f"wrote model.safetensors, model.json, README.md for '{meta['model']}' to {out_dir} "
                   f"({len(meta['metrics'])} metric values); nothing uploaded")
        return
    url = push(source, repo_id, model=model_name, scale=scale, private=private, message=message, registry=registry)
    click.echo(f"pushed to {repo_id}: {url}")
    click.echo(f"use it as hf-hub:{repo_id}: zoo.create_model(NAME, checkpoint='hf-hub:{repo_id}'), or "
               f"--sr/--colorizer hf-hub:{repo_id}")


@cli.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Write here instead of stdout (html: a .html file, or a folder that gets report.html).")
@click.option("--pictures/--no-pictures", default=True, show_default=True,
              help="With -o and md: draw comparison grids of the saved outputs into a folder named after the "
                   "file, beside it, and show them at the end of the board.")
def leaderboard_cmd(run_dirs, fmt, output, pictures):
    """Re-render and merge the results of one or more bench runs, without recomputing anything."""
    from zoo.leaderboard import render

    if fmt == "html":  # the report page: pictures are referenced from the run folders, relative to the page
        from zoo.report import render_html, write_report
        from zoo.leaderboard import read_run

        if output:
            click.echo(f"wrote {write_report([Path(d) for d in run_dirs], Path(output))}")
        else:
            runs = [(Path(d), *read_run(Path(d))) for d in run_dirs]
            click.echo(render_html(runs, Path.cwd()), nl=False)
        return
    text = render([Path(d) for d in run_dirs], fmt)
    if output and fmt == "md" and pictures:  # published boards carry their pictures in a folder beside them
        from zoo.boardpictures import write_board_pictures

        section = write_board_pictures([Path(d) for d in run_dirs], Path(output))
        text = text + ("\n" + section if section else "")
    if output:
        from zoo.checkpoint import atomic_write_bytes

        atomic_write_bytes(Path(output), text.encode())
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def main(argv=None) -> None:
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zoo: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see 'zoo {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else " (see 'zoo --help')"
        click.echo(f"zoo: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"zoo: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except ZooError as exc:
        click.echo(f"zoo: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("zoo: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
