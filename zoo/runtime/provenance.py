"""What a result was made with: the command line, zoo's git commit, library versions, the GPU.

Recorded as ``environment`` in every bench run's ``run.json`` and every checkpoint's JSON, so a number or a
pushed model can be traced back to the code and libraries that produced it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

# Distributions whose versions change numbers: the framework, model code (timm), metrics (lpips, pytorch-fid).
PACKAGES = ("torch", "torchvision", "timm", "numpy", "lpips", "pytorch-fid")


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed, ``zoo`` for the program however it was started (script, ``python -m zoo``);
    for ``python -c CODE`` the interpreter's own arguments, the code cut at 200 characters."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0] == "-c":
        argv = [Path(sys.executable).name] + [a if len(a) <= 200 else a[:200] + "..."
                                              for a in getattr(sys, "orig_argv", argv)[1:]]
    elif argv and (Path(argv[0]).name in ("zoo", "__main__.py") or argv[0].endswith("zoo/__main__.py")):
        argv[0] = "zoo"
    return shlex.join(argv)


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported); None when not installed."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


ZOO_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=4)
def git_state(root: Path = ZOO_ROOT) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout zoo runs from, or None for an installed copy."""
    if not (root / ".git").exists():  # a directory in a clone, a file in a worktree
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        # Tracked files only: untracked outputs (runs/, caches) do not make the code differ from the commit.
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):  # no git binary, or not a repository after all
        return None
    return {"commit": commit, "dirty": dirty}


def gpu_info(device) -> dict[str, Any] | None:
    """CUDA and cuDNN versions and the GPU's name when ``device`` is a CUDA device, else None."""
    if device is None or getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return None
    import torch

    dev = torch.device(device)
    return {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "gpu": torch.cuda.get_device_name(dev), "gpu_count": torch.cuda.device_count()}


def environment(device=None, command: str | None = None) -> dict[str, Any]:
    """The record written to ``run.json`` and checkpoint JSON files."""
    env: dict[str, Any] = {
        "command": command if command is not None else command_line(),
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    gpu = gpu_info(device)
    if gpu is not None:
        env["cuda"] = gpu
    return env
