"""Pretrained weight files, found the standard way: the torch hub cache, ``$TORCH_HOME/hub/checkpoints``.

Nothing here downloads. A missing file makes the metric or loss that needs it unavailable, with one line that
says which file to place where (or how to let torch download it on a machine with internet).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file as torchvision / pytorch-fid name it in the hub cache."""

    key: str  # short name used in notes and tables, e.g. "vgg19"
    filename: str  # e.g. "vgg19-dcbb9e9d.pth"; torchvision's names end in a sha256 prefix
    url: str
    purpose: str
    sha256_prefix: str | None = None  # published hash prefix, where known

    @property
    def path(self) -> Path:
        return hub_checkpoint_dir() / self.filename

    def find(self) -> Path | None:
        p = self.path
        return p if p.is_file() else None

    def missing_message(self) -> str:
        return (f"{self.key} weights missing: place {self.filename} in {hub_checkpoint_dir()} "
                f"(download {self.url}, or run once with internet where torch fetches it)")

    def fingerprint(self) -> str | None:
        """``filename@sha256[:10]`` of the present file, recorded with every number computed from it."""
        p = self.find()
        return None if p is None else f"{self.filename}@{file_sha256(p)[:10]}"


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's own rule, re-read on each call so tests can change it)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def load_state_dict(weight: WeightFile) -> dict[str, torch.Tensor] | None:
    """The state dict of a present weight file (``weights_only=True``: never unpickles code), else None."""
    p = weight.find()
    if p is None:
        return None
    state = torch.load(p, map_location="cpu", weights_only=True)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


# The weight files the built-in metrics and models use. Plugins may declare more on their ModelEntry.
ALEXNET = WeightFile("alexnet", "alexnet-owt-7be5be79.pth",
                     "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                     "LPIPS (net='alex') backbone", "7be5be79")
VGG16 = WeightFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                   "LPIPS (net='vgg') backbone; VGG16 colorization encoder", "397923af")
VGG19 = WeightFile("vgg19", "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                   "VGG19 content (perceptual) loss", "dcbb9e9d")
FID_INCEPTION = WeightFile(
    "fid_inception", "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "FID / KID Inception-v3 features (pytorch-fid)", "6726825d")

BUILTIN_WEIGHTS = (ALEXNET, VGG16, VGG19, FID_INCEPTION)


def sha256_prefix(weight: WeightFile, n: int = 10) -> str | None:
    """The first ``n`` hex digits of the present file's sha256, else None (what results record)."""
    p = weight.find()
    return None if p is None else file_sha256(p)[:n]


def _known_weights(extra=()) -> list[WeightFile]:
    """BUILTIN_WEIGHTS then ``extra`` (e.g. the ``weights`` of registered models), one row per filename."""
    seen: dict[str, WeightFile] = {}
    for w in (*BUILTIN_WEIGHTS, *extra):
        seen.setdefault(w.filename, w)
    return list(seen.values())


def weight_table(extra=()) -> list[dict]:
    """Every known weight file (built-ins plus ``extra`` WeightFile objects, deduplicated by filename).

    One dict per file: ``name`` (= ``key``), ``filename, purpose, url, present, path``, ``size`` (bytes, None
    if missing), ``sha256`` (first 10 hex digits of the present file, else None) and ``expected`` (the
    published prefix, or None).
    """
    rows = []
    for w in _known_weights(extra):
        p = w.find()
        rows.append({
            "name": w.key,
            "key": w.key,
            "filename": w.filename,
            "purpose": w.purpose,
            "url": w.url,
            "present": p is not None,
            "path": str(w.path),
            "size": None if p is None else p.stat().st_size,
            "sha256": None if p is None else file_sha256(p)[:10],
            "expected": w.sha256_prefix,
        })
    return rows


def check_weight(weight: WeightFile) -> str:
    """``"missing"``, ``"ok"``, ``"MISMATCH (expected 7be5be79, got 0123abcd)"`` or ``"no published hash"``."""
    p = weight.find()
    if p is None:
        return "missing"
    if not weight.sha256_prefix:
        return "no published hash"
    expected = weight.sha256_prefix.lower()
    got = file_sha256(p)[:len(expected)]
    return "ok" if got == expected else f"MISMATCH (expected {expected}, got {got})"


def check_weights(extra=()) -> dict[str, str]:
    """filename -> :func:`check_weight` status for every known file (built-ins plus ``extra``); hashes every
    present file (about a second per 500 MB, then cached per path/size/mtime)."""
    return {w.filename: check_weight(w) for w in _known_weights(extra)}
