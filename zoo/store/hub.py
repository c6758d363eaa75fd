"""Checkpoints by name on the Hugging Face Hub: ``hf-hub:ORG/REPO`` (optionally ``@REVISION``).

A zoo repository holds ``model.safetensors``, ``model.json`` (what :mod:`zoo.store.checkpoint` writes) and a
``README.md`` model card. Downloading goes through ``huggingface_hub``'s cache, so a name is fetched once;
both files come from the same commit, and loading applies the rules of local files (safetensors only, a
registered model, tensors that fit, the weights' sha256). zoo reads ``HF_ENDPOINT``, ``HF_HUB_CACHE`` /
``HF_HOME`` and ``HF_HUB_OFFLINE`` itself each time a name is used (huggingface_hub reads them once, at
import), so setting them within a process takes effect; ``HF_TOKEN`` is huggingface_hub's, read per request.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import zoo
from zoo.errors import ZooError

PREFIX = "hf-hub:"
FILES = ("model.safetensors", "model.json")
_SPEC_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_hub_spec(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse(spec: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/REPO[@REVISION]`` -> ``(repo_id, revision or None)``."""
    match = _SPEC_RE.match(spec[len(PREFIX):] if is_hub_spec(spec) else spec)
    if match is None:
        raise ZooError(f"'{spec}' is not a Hub name: write hf-hub:ORG/REPO (or hf-hub:ORG/REPO@REVISION)")
    return match["repo"], match["rev"]


def check_repo_id(repo_id: str) -> str:
    repo, revision = parse(repo_id)
    if revision is not None:
        raise ZooError(f"'{repo_id}': give the repository as ORG/REPO, without a revision")
    return repo


def endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """Where downloaded repositories live: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch(spec: str) -> Path:
    """The local path of ``model.safetensors`` for ``spec``, downloaded into the cache unless already there.

    ``model.json`` is fetched first and pins the commit the weights then come from, so the two files always
    match even when the repository changes in between. Every failure is one :class:`ZooError` line.
    """

    repo_id, revision = parse(spec)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ZooError(f"{spec}: Hub names need huggingface_hub (pip install huggingface_hub)") from None

    def download(filename: str, rev: str | None) -> Path:
        return Path(hf_hub_download(repo_id, filename, revision=rev, cache_dir=cache_dir(), endpoint=endpoint(),
                                    local_files_only=offline(), library_name="zoo",
                                    library_version=zoo.__version__))

    with _one_line_errors(spec):
        meta = download("model.json", revision)
        # snapshots/<commit>/model.json: the weights must come from the same commit
        commit = meta.parent.name if _COMMIT_RE.match(meta.parent.name) else revision
        weights = download("model.safetensors", commit)
    if weights.parent != meta.parent:  # cannot happen with the commit pinned; refuse rather than mix
        raise ZooError(f"{spec}: model.safetensors and model.json came from different commits")
    return weights


class _one_line_errors:
    """Turns huggingface_hub's exceptions into one line that says what to do."""

    def __init__(self, spec: str, pushing: bool = False):
        self.spec, self.pushing = spec, pushing

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, ZooError) or not isinstance(exc, Exception):
            return False
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        spec, where = self.spec, endpoint()
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if self.pushing and (status in (401, 403) or isinstance(exc, RepositoryNotFoundError)):
            message = (f"cannot push to {spec} on {where} (HTTP {status}): log in with a token that may write "
                       "there (hf auth login, or HF_TOKEN)")
        elif isinstance(exc, LocalEntryNotFoundError):
            why = "HF_HUB_OFFLINE is set" if offline() else f"{where} cannot be reached"
            message = (f"{spec} is not in the local Hub cache ({cache_dir()}) and {why}: download it once while "
                       "online, or give a local checkpoint")
        elif isinstance(exc, GatedRepoError):
            message = f"{spec} is gated on {where}: accept its terms there and log in (hf auth login, or HF_TOKEN)"
        elif isinstance(exc, RepositoryNotFoundError):
            message = (f"{spec}: no such repository on {where} (a private one needs a login: hf auth login, "
                       "or HF_TOKEN)")
        elif isinstance(exc, RevisionNotFoundError):
            message = f"{spec}: the repository has no such revision on {where}"
        elif isinstance(exc, RemoteEntryNotFoundError):
            message = (f"{spec} is not a zoo checkpoint: it lacks {' or '.join(FILES)} (zoo loads safetensors "
                       "weights with their JSON, never pickles)")
        elif isinstance(exc, HfHubHTTPError):
            message = f"{spec}: the Hub at {where} answered HTTP {status}"
        elif isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
            # connection refused, DNS, TLS, timeouts: httpx's errors are not OSErrors
            action = "push to" if self.pushing else "download from"
            message = f"{spec}: cannot {action} {where}: {type(exc).__name__}: {exc}".splitlines()[0]
        else:
            return False
        raise ZooError(message) from None


def upload(folder: Path, repo_id: str, *, message: str, private: bool = False) -> str:
    """Create ``repo_id`` if needed and commit every file of ``folder`` to it; the commit's URL.

    One commit of explicit files (not ``upload_folder``): the repository gets exactly the files zoo wrote.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=endpoint())
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    with _one_line_errors(f"{PREFIX}{repo_id}", pushing=True):
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.create_commit(repo_id, [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
                                           for p in files], commit_message=message)
    return str(getattr(info, "commit_url", "") or f"{endpoint()}/{repo_id}")
