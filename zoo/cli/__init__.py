"""The ``zoo`` command line: the group, its entry point :func:`main`, and the commands (:mod:`zoo.cli`).

User errors print one line and exit with code 2.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from zoo.cli import bench, models, publish, run, train_eval
from zoo.errors import ZooError

# Only click and the standard library at import time: torch loads inside the commands that need it, so
# --help, `zoo list` (from its cache, zoo.cli.listing) and shell completion stay fast.


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One readable line per warning; tracebacks are for bugs, not for a broken plugin or a bad file.
    print(f"zoo: warning: {message}", file=sys.stderr)


def _add_plugin_paths(ctx, param, values):
    # Through the environment, so that everything this command starts (Ray workers, zoo run's children) loads
    # the same plugins.
    if values:
        paths = [str(Path(v).resolve()) for v in values]
        before = os.environ.get("ZOO_PLUGIN_PATH", "")
        os.environ["ZOO_PLUGIN_PATH"] = os.pathsep.join(paths + ([before] if before else []))
    return values


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="zoo", prog_name="zoo")
@click.option("--plugin", "plugin_paths", multiple=True, metavar="PATH", callback=_add_plugin_paths,
              expose_value=False, is_eager=True,
              help="Load a plugin module file or package folder without installing it (repeatable; also "
                   "ZOO_PLUGIN_PATH).")
def cli():
    """A model zoo and benchmark for colorization and super-resolution.

    Models come from plugins (entry-point group 'zoo'); the built-ins register the same way.
    """


for command in (models.list_models, models.check_cmd, models.plugins, models.metrics_cmd, models.weights_cmd,
                models.suites_cmd, train_eval.train_cmd, train_eval.eval_cmd, bench.bench_cmd, run.run_cmd,
                publish.push_cmd, publish.leaderboard_cmd):
    cli.add_command(command)


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
