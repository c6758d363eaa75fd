"""The ``zoo`` command line. User errors print one line and exit with code 2."""

from __future__ import annotations

import json
import sys
import warnings

import click

from zoo.errors import ZooError


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One readable line per warning; tracebacks are for bugs, not for a broken plugin or a bad file.
    print(f"zoo: warning: {message}", file=sys.stderr)


def _registry():
    from zoo.registry import get_registry

    registry = get_registry()
    for message in registry.conflict_messages():
        click.echo(f"zoo: error: {message}", err=True)
    return registry


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="zoo", prog_name="zoo")
def cli():
    """A model zoo and benchmark for colorization and super-resolution.

    Models come from plugins (entry-point group 'zoo'); the built-ins register the same way.
    """


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", type=click.Choice(["colorizer", "sr"]), help="Only models of this task.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (documented in the README).")
def list_models(pattern, task, as_json):
    """List registered models, optionally filtered by a glob PATTERN such as 'edsr*'.

    Parameter counts are for each model's default (paper) configuration.
    """
    registry = _registry()
    rows = []
    for entry in registry.entries(pattern, task):
        try:
            params = entry.parameter_count()
        except Exception as exc:  # a plugin's builder is the plugin's bug: report, keep listing
            warnings.warn(f"model '{entry.name}' ({entry.distribution}) failed to build: {exc}")
            params = None
        rows.append({
            "name": entry.name,
            "task": entry.task,
            "params": params,
            "distribution": entry.distribution,
            "version": entry.version,
            "presets": sorted(entry.presets),
            "trainable": entry.trainable,
            "summary": entry.summary,
            "reference": entry.reference,
        })
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
    if registry.conflicts:
        sys.exit(1)


def _fmt_params(n):
    if n is None:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else str(n))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List plugin distributions: version, where they load from, models, load errors.

    Installing a plugin runs its code; restrict loading with ZOO_PLUGINS=dist1,dist2 or
    ZOO_DISABLE_PLUGINS=dist.
    """
    registry = _registry()
    rows = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "location": p.location,
             "models": p.models, "errors": p.errors} for p in registry.plugins]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "conflicts": registry.conflicts}, indent=2))
    else:
        from tabulate import tabulate

        table = [[r["distribution"], r["version"], r["plugin"], ", ".join(r["models"]) or "-",
                  "; ".join(r["errors"]) or "ok", r["location"]] for r in rows]
        click.echo(tabulate(table, headers=["distribution", "version", "entry point", "models", "status",
                                            "location"]))
    if registry.conflicts:
        sys.exit(1)


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
