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
        first = str(exc).split(" device type at start")[0]
        raise ZooError(f"unknown device '{name}' ({first}; zoo runs on cpu, cuda, cuda:N or mps)") from None
    if device.type == "meta":  # holds shapes, no data: every number would be garbage or an error
        raise ZooError(f"device '{name}' holds no data and cannot run models; use cpu, cuda or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(f"device '{name}' asked for, but CUDA is not available here (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ZooError(f"device '{name}' asked for, but this machine has {torch.cuda.device_count()} "
                           f"CUDA device(s): cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif device.type != "cpu":
        # mps, xpu, ...: the torch backend of that name says whether this machine has one
        backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise ZooError(f"device '{name}' asked for, but this machine has no {device.type} device "
                           f"(use --device cpu)")
    elif device.index not in (None, 0):
        raise ZooError(f"device '{name}': there is one CPU device, 'cpu'")
    return device
