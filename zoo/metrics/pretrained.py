"""Pretrained networks for metrics (LPIPS, FID, KID): their weight files, read safely, and where they run.

Every factory first gets its weight file from the torch hub cache (``$TORCH_HOME/hub/checkpoints``, see
:mod:`zoo.store.weights`), which downloads a missing one, verified, unless downloads are off; a file that stays
missing or is refused raises :class:`MetricUnavailable` with one line saying why. The tensors are read with
``torch.load(weights_only=True)`` by zoo itself and handed to lpips / pytorch-fid, whose own loaders
(``torch.hub.load_state_dict_from_url``, which unpickles with ``weights_only=False``) never run: a booby-
trapped file under a standard name is refused, not executed. As a second guard, ``torch.hub``'s unverified
download is replaced by a function that refuses while those networks are built (:func:`downloads_refused`).
Every result records the files it used (``MetricResult.weights``, sha256 prefixes of ``HASH_DIGITS``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.hub

from zoo.plugins.metric_interface import MetricUnavailable
from zoo.runtime.device import pick_device
from zoo.store.weights import ALEXNET, FID_INCEPTION, VGG16, WeightFile, WeightsUnavailable, read_state_dict, require

HASH_DIGITS = 10  # length of the sha256 prefixes recorded in MetricResult.weights

# Weight files each metric needs, so that a benchmark can fetch them before its jobs start.
METRIC_WEIGHTS: dict[str, tuple[WeightFile, ...]] = {
    "lpips": (ALEXNET,), "lpips_vgg": (VGG16,), "fid": (FID_INCEPTION,), "kid": (FID_INCEPTION,)}


def weights_for_metrics(names: Iterable[str]) -> list[WeightFile]:
    """The weight files the named metrics (default parameters) need, each once, in order."""
    out: dict[str, WeightFile] = {}
    for name in names:
        for w in METRIC_WEIGHTS.get(name, ()):
            out.setdefault(w.filename, w)
    return list(out.values())


def metric_device(device) -> torch.device:
    """``device`` as a torch.device (a name or None goes through :func:`zoo.runtime.device.pick_device`)."""
    if isinstance(device, torch.device):
        return device
    return pick_device(device)


def require_file(weight: WeightFile) -> Path:
    """The file in the hub cache (downloaded first when missing and allowed), else MetricUnavailable."""
    try:
        return require(weight)
    except WeightsUnavailable as exc:
        raise MetricUnavailable(str(exc)) from None


def read_tensors(weight: WeightFile) -> tuple[Path, dict[str, torch.Tensor]]:
    """The file and its tensors, read with ``weights_only=True``; MetricUnavailable when missing or refused."""
    path = require_file(weight)
    try:
        return path, read_state_dict(weight, path)
    except WeightsUnavailable as exc:
        raise MetricUnavailable(str(exc)) from None


@contextlib.contextmanager
def downloads_refused(weight: WeightFile):
    """While building a network: make any torch.hub download (unverified, unpickled unsafely) an error."""
    original = torch.hub.download_url_to_file

    def refuse(url, dst, *args, **kwargs):
        raise MetricUnavailable(f"refusing to download {url} through torch.hub: zoo fetches "
                                f"{weight.filename} itself, verified")

    torch.hub.download_url_to_file = refuse
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" (lpips uses the old API)
            yield
    finally:
        torch.hub.download_url_to_file = original


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], weight: WeightFile, what: str) -> None:
    """``module.load_state_dict(state, strict=True)``, a misfit reported as MetricUnavailable."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise MetricUnavailable(f"{weight.filename} does not fit {what}: {first}") from None
