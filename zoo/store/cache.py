"""Where zoo keeps what it can recompute: trained models, evaluation results, reference features."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$ZOO_CACHE``, else ``~/.cache/zoo``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ZOO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"


def content_key(payload: Any, length: int = 16) -> str:
    """The cache address of what ``payload`` describes: a hash of its JSON, the same for equal payloads.
    Training runs, evaluations and drawn curves are stored under it."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:length]
