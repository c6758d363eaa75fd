"""What several commands share: the registry with its conflicts said, common options, download lines."""

from __future__ import annotations

import os

import click

# Function-level imports: the registry and torch load when an option needs them, so `zoo --help` stays fast.


def cli_registry(named=()):
    """The plugin registry; conflicting plugins are named on stderr (the commands that need models go on),
    except a conflict over a name in ``named``: the command's own error says that one."""
    from zoo.plugins.registry import get_registry

    found = get_registry()
    for message in found.conflict_messages(skip=set(named)):
        click.echo(f"zoo: error: {message}", err=True)
    return found


def _set_offline(ctx, param, value):
    # An environment variable, so data-loader workers, subprocesses and Ray tasks see it too.
    if value:
        os.environ["ZOO_OFFLINE"] = "1"
    return value


offline_option = click.option(
    "--offline", is_flag=True, expose_value=False, callback=_set_offline,
    help="Never download weight files (as ZOO_OFFLINE=1): a missing one makes its metric n/a or its loss "
         "term off.")


# zoo.runtime.devicefacts.PRECISIONS, spelled out so that building the CLI imports none of zoo's core (a test keeps
# the two equal)
precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
    help="Training precision: auto = mixed on CUDA, float32 on a CPU; bf16 = bfloat16 autocast "
         "(fast on CPUs with AMX / AVX512-BF16); fp16 = CUDA only.")


deterministic_option = click.option(
    "--deterministic", is_flag=True,
    help="Deterministic algorithms and fixed cuDNN choices: on CUDA, the same numbers every run (slower). "
         "CPU runs are reproducible without it.")


def split_csv(ctx, param, value):
    """A comma-separated ``multiple=True`` option as a tuple of names: repeats add up, so ``--metrics a
    --metrics b`` means ``--metrics a,b``. Not given: None."""
    if not value:
        return None
    return tuple(v.strip() for part in value for v in part.split(",") if v.strip())


def echo_downloads(downloaded, err=False):
    """One line per weight file fetched (``Downloaded`` records or their dicts)."""
    from zoo.store.download import Downloaded
    from zoo.store.weights import hub_dir_display

    for d in downloaded:
        d = d if isinstance(d, Downloaded) else Downloaded(**d)
        click.echo(f"downloaded: {d.note()}, sha256 verified, into {hub_dir_display()}", err=err)


def checkpoint_scale(spec):
    """The SR scale a checkpoint was trained for (None for a model name or a file without zoo's metadata)."""
    from zoo.store.locate import locate, looks_like_checkpoint

    if not spec or not looks_like_checkpoint(spec) or spec.endswith((".pth", ".pt")):
        return None
    from zoo.store.checkpoint import read_meta  # torch: only for a checkpoint

    return read_meta(locate(spec)).get("config", {}).get("scale")
