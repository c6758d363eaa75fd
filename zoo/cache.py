"""Where zoo keeps what it can recompute: trained models, evaluation results, reference features."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$ZOO_CACHE``, else ``~/.cache/zoo``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ZOO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"
