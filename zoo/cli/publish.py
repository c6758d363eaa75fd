"""Sharing results: ``zoo push`` (a trained model to the Hugging Face Hub) and ``zoo leaderboard`` (the
boards of bench runs, merged and re-rendered)."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli import completion as complete
from zoo.cli.options import cli_registry

# Function-level imports: pandas, torch and the Hub client load when a command runs, so `zoo --help` stays fast.


@click.command("push")
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
    from zoo.store import hub
    from zoo.store.push import prepare, push

    repo_id = hub.check_repo_id(repo_id)
    registry = cli_registry()
    if out_dir:
        meta = prepare(source, repo_id, Path(out_dir), model=model_name, scale=scale, registry=registry)
        click.echo(f"wrote model.safetensors, model.json, README.md for '{meta['model']}' to {out_dir} "
                   f"({len(meta['metrics'])} metric values); nothing uploaded")
        return
    url = push(source, repo_id, model=model_name, scale=scale, private=private, message=message, registry=registry)
    click.echo(f"pushed to {repo_id}: {url}")
    click.echo(f"use it as hf-hub:{repo_id}: zoo.create_model(NAME, checkpoint='hf-hub:{repo_id}'), or "
               f"--sr/--colorizer hf-hub:{repo_id}")


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Write here instead of stdout (html: a .html file, or a folder that gets report.html).")
@click.option("--pictures/--no-pictures", default=True, show_default=True,
              help="With -o and md: draw comparison grids of the saved outputs into a folder named after the "
                   "file, beside it, and show them at the end of the board.")
def leaderboard_cmd(run_dirs, fmt, output, pictures):
    """Re-render and merge the results of one or more bench runs, without recomputing anything."""
    from zoo.boards.leaderboard import render
    from zoo.boards.report import render_html, write_report
    from zoo.store.files import atomic_write_bytes
    from zoo.store.runs import read_run

    if fmt == "html":  # the report page: pictures are referenced from the run folders, relative to the page
        if output:
            click.echo(f"wrote {write_report([Path(d) for d in run_dirs], Path(output))}")
        else:
            runs = [(Path(d), *read_run(Path(d))) for d in run_dirs]
            click.echo(render_html(runs, Path.cwd()), nl=False)
        return
    text = render([Path(d) for d in run_dirs], fmt)
    if output and fmt == "md" and pictures:  # published boards carry their pictures in a folder beside them
        from zoo.boards.boardpictures import write_board_pictures

        section = write_board_pictures([Path(d) for d in run_dirs], Path(output))
        text = text + ("\n" + section if section else "")
    if output:
        atomic_write_bytes(Path(output), text.encode())
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
