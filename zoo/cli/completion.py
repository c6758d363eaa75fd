"""Shell completion of model, preset, suite and metric names, from the cached listing (no torch).

Enable it once per shell (the README says where to put the line)::

    eval "$(_ZOO_COMPLETE=bash_source zoo)"      # bash
    eval "$(_ZOO_COMPLETE=zsh_source zoo)"       # zsh
    _ZOO_COMPLETE=fish_source zoo | source       # fish

Options that take comma-separated names (``--metrics psnr,ss``) complete the last name; options that take a
name or a checkpoint offer names, and files once what is typed looks like a path.
"""

from __future__ import annotations

import os
import warnings

from click.shell_completion import CompletionItem

# Function-level imports: shell completion reads the cached listing; anything more loads only on a cache miss.


def _listing():
    from zoo.cli.listing import load_listing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a completion must print candidates only
        return load_listing()


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", "/")) or os.sep in text


def _items(candidates: dict[str, str], incomplete: str, commas: bool) -> list[CompletionItem]:
    head, last = "", incomplete
    if commas and "," in incomplete:
        done, _, last = incomplete.rpartition(",")
        head = done + ","
    return [CompletionItem(head + name, help=text) for name, text in sorted(candidates.items())
            if name.startswith(last)]


def models(task: str | None = None, *, commas: bool = False, files: bool = False):
    """Registered model names (of ``task``); with ``files``, paths too (a checkpoint instead of a name)."""

    def complete(ctx, param, incomplete):
        if files and _looks_like_path(incomplete):
            return [CompletionItem(incomplete, type="file")]
        rows = _listing().models
        return _items({r["name"]: r["summary"] for r in rows if task is None or r["task"] == task}, incomplete,
                      commas)

    return complete


def presets(ctx, param, incomplete):
    """The presets of the model given earlier on the line (``--model``), else every model's."""
    rows = _listing().models
    model = ctx.params.get("model_name")
    names = {p for r in rows if model in (None, r["name"]) for p in r["presets"]}
    return _items({n: "" for n in names}, incomplete, commas=False)


def suites(ctx, param, incomplete):
    if _looks_like_path(incomplete) or incomplete.endswith(".toml"):
        return [CompletionItem(incomplete, type="file")]
    from zoo.harness.suite import available_suites

    return _items({n: "" for n in available_suites()}, incomplete, commas=False)


def metrics(ctx, param, incomplete):
    return _items({n: "" for n in _listing().metrics}, incomplete, commas=True)
