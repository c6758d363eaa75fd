"""Pretrained weight files, found the standard way: the torch hub cache, ``$TORCH_HOME/hub/checkpoints``.

A missing file is fetched on first use (:func:`require`, through :mod:`zoo.store.download`: verified against its
published hash before it lands under its standard name) unless downloads are off (``--offline``,
``ZOO_OFFLINE=1``, ``HF_HUB_OFFLINE=1``). When it stays missing, the metric or loss that needs it is
unavailable with one line saying why. Every file is read with ``torch.load(weights_only=True)``: a file that
holds anything but tensors is refused, never unpickled.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.store import download


class WeightsUnavailable(ZooError):
    """A weight file cannot be used here; the message (one line) says why and what to do."""


class WeightsMissing(WeightsUnavailable):
    """Not in the hub cache, and not downloaded (offline, or the download failed)."""


class WeightsRefused(WeightsUnavailable):
    """Present, but not a plain file of tensors (or unreadable): never unpickled."""


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file as torchvision / pytorch-fid name it in the hub cache."""

    key: str  # short name used in notes and tables, e.g. "vgg19"
    filename: str  # e.g. "vgg19-dcbb9e9d.pth"; torchvision's names end in a sha256 prefix
    url: str
    purpose: str
    sha256_prefix: str | None = None  # published hash prefix, where known
    sha256: str | None = None  # the full published sha256, where known (checked instead of the prefix)

    @property
    def path(self) -> Path:
        return hub_checkpoint_dir() / self.filename

    def find(self) -> Path | None:
        p = self.path
        return p if p.is_file() else None

    @property
    def expected_sha256(self) -> str | None:
        """What the file's sha256 must start with: the full digest where known, else the published prefix."""
        return (self.sha256 or self.sha256_prefix or "").lower() or None

    def missing_message(self) -> str:
        """One line: the file is missing, and why it was not downloaded (offline, or what failed)."""
        off = download.offline_reason()
        if off:
            why = (f"downloads are off ({off}); run 'zoo weights --download' where a network or "
                   f"ZOO_WEIGHTS_MIRROR is reachable, or place the file there")
        else:
            why = _FAILED.get(_attempt_key(self)) or f"'zoo weights --download {self.key}' fetches it ({self.url})"
        return f"{self.key} weights missing: {self.filename} is not in {hub_dir_display()}; {why}"

    @property
    def folder_display(self) -> str:
        """Where the file goes, as messages name it (:func:`hub_dir_display`: never this machine's path)."""
        return hub_dir_display()

    def fingerprint(self) -> str | None:
        """``filename@sha256[:10]`` of the present file, recorded with every number computed from it."""
        p = self.find()
        return None if p is None else f"{self.filename}@{file_sha256(p)[:10]}"


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's own rule, re-read on each call so tests can change it)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_dir_display() -> str:
    """The hub cache as messages, footnotes and leaderboards name it: by the setting that decides it
    (``$TORCH_HOME/hub/checkpoints``, ``~/.cache/torch/hub/checkpoints``), never this machine's path."""
    if getattr(torch.hub, "_hub_dir", None):  # torch.hub.set_dir() in this process
        return "<torch.hub.set_dir()>/checkpoints"
    if os.environ.get("TORCH_HOME"):
        return "$TORCH_HOME/hub/checkpoints"
    if os.environ.get("XDG_CACHE_HOME"):
        return "$XDG_CACHE_HOME/torch/hub/checkpoints"
    return "~/.cache/torch/hub/checkpoints"


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


# Download failures of this process, by (destination, source): later metrics needing the same file report the
# same reason at once instead of waiting for the network again.
_FAILED: dict[tuple[str, str], str] = {}


def _attempt_key(weight: WeightFile) -> tuple[str, str]:
    return str(weight.path), download.source_url(weight)


def require(weight: WeightFile) -> Path:
    """The file in the hub cache; if missing, downloaded now (verified) unless downloads are off.

    Raises :class:`WeightsMissing` (one line: why, and how to get the file) when it is still missing.
    """
    p = weight.find()
    if p is not None:
        return p
    key = _attempt_key(weight)
    if not download.offline_reason() and key not in _FAILED:
        try:
            return download.fetch(weight)
        except download.DownloadError as exc:
            _FAILED[key] = (f"{exc}; retry with 'zoo weights --download {weight.key}', set ZOO_WEIGHTS_MIRROR, "
                            f"or place the file there")
    raise WeightsMissing(weight.missing_message())


def read_state_dict(weight: WeightFile, path: Path) -> dict[str, torch.Tensor]:
    """Tensors of ``path`` with ``torch.load(weights_only=True)``; floats as float32. Anything else (a pickle
    that would run code, a truncated or foreign file) is :class:`WeightsRefused`, one line, never unpickled."""
    where = f"{weight.filename} in {hub_dir_display()}"
    fix = "delete it and run 'zoo weights --download'"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsRefused(f"{where} refused: it holds more than tensors ({_unpickler_reason(exc)}), "
                             f"so loading it could run code; {fix}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsRefused(f"{where} is not a readable weight file ({_first_sentence(exc)}); {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsRefused(f"{where} is not a state dict of tensors; {fix}")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _unpickler_reason(exc: Exception) -> str:
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", str(exc), re.S)
    return " ".join(m.group(1).split())[:160] if m else "not a plain tensor file"


def _first_sentence(exc: Exception) -> str:
    return " ".join(str(exc).split(". ")[0].split())[:160] or type(exc).__name__


def load_state_dict(weight: WeightFile) -> dict[str, torch.Tensor] | None:
    """The file's tensors (fetched first when missing, see :func:`require`), or None when it stays missing.
    A present file that is not plain tensors raises :class:`WeightsRefused`."""
    try:
        path = require(weight)
    except WeightsMissing:
        return None
    return read_state_dict(weight, path)


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


def known_weights(extra=(), keys=()) -> list[WeightFile]:
    """BUILTIN_WEIGHTS then ``extra`` (e.g. the ``weights`` of registered models), one per filename; only those
    whose key or filename is in ``keys`` when given (an unknown one is a ZooError naming the known keys)."""
    seen: dict[str, WeightFile] = {}
    for w in (*BUILTIN_WEIGHTS, *extra):
        seen.setdefault(w.filename, w)
    files = list(seen.values())
    if not keys:
        return files
    unknown = [k for k in keys if not any(k in (w.key, w.filename) for w in files)]
    if unknown:
        raise ZooError(f"unknown weight file '{unknown[0]}' (known: {', '.join(w.key for w in files)})")
    return [w for w in files if w.key in keys or w.filename in keys]


def weight_table(extra=(), keys=()) -> list[dict]:
    """Every known weight file (built-ins plus ``extra`` WeightFile objects, deduplicated by filename; only
    those named in ``keys`` when given, see :func:`known_weights`).

    One dict per file: ``name`` (= ``key``), ``filename, purpose, url`` (upstream), ``source`` (where a
    download would come from: the mirror when ``ZOO_WEIGHTS_MIRROR`` is set, else ``url``), ``present, path``,
    ``size`` (bytes, None if missing), ``sha256`` (first 10 hex digits of the present file, else None),
    ``expected`` (the published prefix, or None), ``expected_sha256`` (what a download must hash to: the full
    digest where known, else the prefix) and ``verified`` (``ok``, ``mismatch``, ``missing`` or
    ``no published hash``).
    """
    rows = []
    for w in known_weights(extra, keys):
        p = w.find()
        status = check_weight(w)
        rows.append({
            "name": w.key,
            "key": w.key,
            "filename": w.filename,
            "purpose": w.purpose,
            "url": w.url,
            "source": download.source_url(w),
            "present": p is not None,
            "path": str(w.path),
            "size": None if p is None else p.stat().st_size,
            "sha256": None if p is None else file_sha256(p)[:10],
            "expected": w.sha256_prefix,
            "expected_sha256": w.expected_sha256,
            "verified": "mismatch" if status.startswith("MISMATCH") else status,
        })
    return rows


def check_weight(weight: WeightFile) -> str:
    """``"missing"``, ``"ok"``, ``"MISMATCH (expected 7be5be79, got 0123abcd)"`` or ``"no published hash"``."""
    p = weight.find()
    if p is None:
        return "missing"
    expected = weight.expected_sha256
    if not expected:
        return "no published hash"
    got = file_sha256(p)
    if got.startswith(expected):
        return "ok"
    return f"MISMATCH (expected {expected[:16]}, got {got[:min(len(expected), 16)]})"
