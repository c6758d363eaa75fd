"""What is installed, and whether it works: ``zoo list``, ``check``, ``plugins``, ``metrics``, ``weights``,
``suites``."""

from __future__ import annotations

import fnmatch
import json
import sys
import warnings

import click

from zoo.cli import completion as complete
from zoo.cli.options import cli_registry, echo_downloads, offline_option, split_csv
from zoo.errors import ZooError

# Function-level imports: torch, the registry and the weight files load when a command runs, so `zoo --help` and
# `zoo list` (from its cache) stay fast.

LIST_KEYS = ("name", "task", "params", "distribution", "version", "presets", "trainable", "summary", "reference")


@click.command("list")
@click.argument("pattern", required=False, shell_complete=complete.models())
@click.option("--task", type=click.Choice(["colorizer", "sr"]), help="Only models of this task.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (documented in the README).")
@click.option("--refresh", is_flag=True, help="Import every plugin again instead of reading the cached listing.")
def list_models(pattern, task, as_json, refresh):
    """List registered models, optionally filtered by a glob PATTERN such as 'edsr*'.

    Parameter counts are for each model's default (paper) configuration. The listing is cached until a
    plugin (or zoo) changes, so only the first run after a change imports the plugins and torch.
    """
    from zoo.cli.listing import load_listing

    listing = load_listing(refresh)
    for message in listing.warnings:
        warnings.warn(message, stacklevel=1)
    for message in listing.conflicts:
        click.echo(f"zoo: error: {message}", err=True)
    chosen = [r for r in listing.models
              if (task is None or r["task"] == task) and (pattern is None or fnmatch.fnmatchcase(r["name"], pattern))]
    if listing.count(chosen):
        listing.save()
    for row in chosen:
        if row.get("build_error"):
            warnings.warn(row["build_error"], stacklevel=1)
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


@click.command("check")
@click.argument("patterns", nargs=-1, metavar="[NAME|GLOB]...", shell_complete=complete.models())
@click.option("--only", "only", callback=split_csv, multiple=True, metavar="CHECKS",
              help="Comma-separated subset of: contract, presets, forward, train, save_load, seeded, params.")
@click.option("--metrics", "metrics", is_flag=True,
              help="Check metrics instead of models (every registered metric, or those the names match).")
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when available).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@offline_option
def check_cmd(patterns, only, metrics, device, as_json):
    """Run the plugin conformance checks on models (default: every registered model) or metrics.

    Each model must build at every preset, keep its task's tensor contract on odd sizes, train every recipe
    stage for a few steps with finite losses, save and load to identical outputs, train identically from the
    same seed and count the parameters 'zoo list' shows. A metric (--metrics, or a NAME that is a metric) must
    take the evaluation's settings, declare its direction and unit, compute a zoo.MetricResult and refuse a
    setting it does not have. Exits 1 if any check fails.
    """
    from zoo.harness.conformance import CHECKS, check_models, format_results, results_json
    from zoo.runtime.device import pick_device

    registry = cli_registry(named=patterns)  # a conflict over a named model is check's own one-line error
    dev = pick_device(device)

    def progress(result):
        if not as_json:
            click.echo(f"  {result.model:14s} {result.check:10s} {result.status} ({result.seconds:.1f} s)", err=True)

    names = set(registry.names()) | set(registry.invalid)
    metric_names = set(registry.metric_names())
    if not metrics and patterns and all(p in metric_names and p not in names for p in patterns):
        metrics = True  # `zoo check mae`: a metric's name
    if metrics:
        from zoo.harness.metric_conformance import check_metrics

        results = check_metrics(patterns or ("*",), registry=registry, device=dev, on_result=progress)
    else:
        results = check_models(patterns or ("*",), registry=registry, device=dev, checks=only or CHECKS,
                               on_result=progress)
    if as_json:
        click.echo(json.dumps(results_json(results), indent=2))
    else:
        click.echo(format_results(results, "metrics" if metrics else "models"))
    if any(r.status == "fail" for r in results):
        sys.exit(1)


@click.command("plugins")
@click.option("--details", is_flag=True, help="Each load or contract error in full, below the table.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(details, as_json):
    """List plugin distributions: version, where they load from, models, load errors.

    Installing a plugin runs its code; restrict loading with ZOO_PLUGINS=dist1,dist2 or
    ZOO_DISABLE_PLUGINS=dist.
    """
    registry = cli_registry()
    rows = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "location": p.location,
             "models": p.models, "metrics": p.metrics, "errors": p.errors} for p in registry.plugins]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "conflicts": registry.conflicts}, indent=2))
    else:
        from tabulate import tabulate

        table = [[r["distribution"], r["version"], r["plugin"], _names_cell(r["models"], r["metrics"]),
                  f"{len(r['errors'])} error{'s' if len(r['errors']) > 1 else ''}" if r["errors"] else "ok",
                  r["location"]] for r in rows]
        click.echo(tabulate(table, headers=["distribution", "version", "entry point", "models / metrics",
                                            "status", "location"]))
        errors = [(r["distribution"], e) for r in rows for e in r["errors"]]
        if errors and details:
            click.echo("")
            for dist, error in errors:
                click.echo(f"{dist}: {error}")
        elif errors:
            click.echo(f"\n{len(errors)} error(s): 'zoo plugins --details' shows them")
    if registry.conflicts:
        sys.exit(1)


def _names_cell(models: list[str], metrics: list[str]) -> str:
    names = ", ".join(models + metrics) or "-"
    if len(names) <= 60:
        return names
    return ", ".join(f"{len(x)} {what}" for x, what in ((models, "models"), (metrics, "metrics")) if x)


@click.command("metrics")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def metrics_cmd(as_json):
    """List registered metrics (core and plugins): direction, unit, plugin, summary."""
    registry = cli_registry()
    rows = [{"name": m.name, "higher_is_better": m.higher_is_better, "ranked": m.ranked, "unit": m.unit,
             "distribution": m.distribution, "version": m.version, "summary": m.summary} for m in registry.metrics()]
    if as_json:
        click.echo(json.dumps({"metrics": rows}, indent=2))
        return
    from tabulate import tabulate

    table = [[r["name"], ("↑" if r["higher_is_better"] else "↓") if r["ranked"] else "-", r["unit"] or "-",
              f"{r['distribution']} {r['version']}".strip(), r["summary"]] for r in rows]
    click.echo(tabulate(table, headers=["name", "better", "unit", "plugin", "summary"]))


@click.command("weights")
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
    from zoo.store.weights import check_weight, known_weights, weight_table

    extra = [w for e in cli_registry().entries() for w in e.weights]
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
    from zoo.store.download import DOWNLOADED, DownloadError, fetch, offline_reason

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
            echo_downloads(DOWNLOADED[n:], err=err)
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
        from zoo.store.weights import hub_checkpoint_dir

        click.echo(f"\nMissing files go in {hub_checkpoint_dir()} ($TORCH_HOME/hub/checkpoints): "
                   f"'zoo weights --download' fetches them, verified, as does first use unless --offline.")
        for r in missing:
            click.echo(f"  {r['filename']}: {r['source']}")


def _fmt_bytes(n):
    if not n:
        return "-"
    return f"{n / 2**20:.1f} MiB"


@click.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suites_cmd(as_json):
    """Built-in suites: name, description, the data each needs and whether it is present here.

    Data under $ZOO_DATA is looked for in the folder ZOO_DATA names (from a checkout, by default
    ../shared/data beside it). Any suite's data can be replaced with --data and --test.
    """
    from zoo.harness.suite import builtin_suites, data_root, describe, load_suite

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
