"""``zoo bench``: the command line of :mod:`zoo.harness.bench` (and ``--dry-run``, :mod:`zoo.harness.dryrun`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from zoo.cli import completion as complete
from zoo.cli.options import cli_registry, deterministic_option, offline_option, precision_option

# Function-level imports: torch and the harness load when the command runs, so `zoo --help` stays fast.


@click.command("bench")
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
@click.option("--retrain", multiple=True, metavar="MODEL|all", shell_complete=complete.models(commas=True),
              help="Train these models again even when cached (comma-separated or repeated; 'all'); their cached "
                   "evaluations are dropped too. A model whose code changed retrains without it.")
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
              retrain, order, cache_dir, workers, executor, address, ray_timeout, gpus_per_job, threads, precision,
              deterministic, dry_run):
    """Train each selected model once, evaluate every colorizer x SR combination, write leaderboards.

    A grid of C colorizers and S SR models trains C + S models (never C x S); trained models and results
    are cached by content, so rerunning trains nothing, and an interrupted run continues. The reference
    baselines (models with nothing to train) are always included.
    """
    from zoo.harness.bench import configure, run_bench
    from zoo.harness.dryrun import dry_run as run_dry
    from zoo.harness.executors import make_executor

    registry = cli_registry()
    suite, col_sel, sr_sel = configure(suite_spec, registry=registry, colorizers=colorizers, srs=srs, scale=scale,
                                       train_data=train_data, tests=tests, preset=preset, steps=steps, seed=seed,
                                       order=order, precision=precision)
    if dry_run:
        run_dry(suite, registry=registry, out=Path(out_dir) if out_dir else None, cache_dir=cache_dir,
                colorizers=col_sel, sr=sr_sel, device=device, workers=workers, deterministic=deterministic,
                executor=executor, log=click.echo)
        return
    if threads not in (None, 1) and executor == "ray":
        raise click.UsageError("--threads is for the local executor; Ray runs one thread per task")
    # RAY_ADDRESS counts as --address (Ray's convention, and what 'ray job submit' sets), and says so in errors
    from_env = click.get_current_context().get_parameter_source("address") is ParameterSource.ENVIRONMENT
    runner = make_executor(executor, device=device, workers=workers, address=address, gpus_per_job=gpus_per_job,
                           threads=threads, timeout=ray_timeout,
                           address_source="RAY_ADDRESS" if from_env else "--address")
    result = run_bench(suite, registry=registry, out=Path(out_dir) if out_dir else None, cache_dir=cache_dir,
                       colorizers=col_sel, sr=sr_sel, executor=runner, log=click.echo, force=force,
                       deterministic=deterministic, retrain=retrain)
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
