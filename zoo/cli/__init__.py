"""The ``zoo`` command line: the group, its entry point :func:`main`, and the commands (:mod:`zoo.cli`).

User errors print one line and exit with code 2.
"""

from __future__ import annotations

import sys
import warnings

import click

from zoo.cli import bench, models, publish, run, train_eval
from zoo.errors import ZooError

# Only click and the standard library at import time: torch loads inside the commands that need it, so
# --help, `zoo list` (from its cache, zoo.plugins.listing) and shell completion stay fast.


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One readable line per warning; tracebacks are for bugs, not for a broken plugin or a bad file.
    print(f"zoo: warning: {message}", file=sys.stderr)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="zoo", prog_name="zoo")
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
