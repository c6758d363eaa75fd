"""Device choice: CUDA when present, else Apple MPS, else CPU; ``--device`` overrides."""

from __future__ import annotations

import torch

from zoo.errors import ZooError


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ZooError(f"unknown device '{name}' ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device '{name}' asked for, but CUDA is not available here (use --device cpu)")
    return device
