"""Small constant tensors (colour matrices, white points, 255), made once per (values, device, dtype).

``torch.tensor(..., device="cuda")`` copies from pageable host memory, which waits for the GPU: done per
batch, it puts a host synchronisation in every step. The cached tensors are shared: never modify one.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=256)
def _make(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # A normal tensor even when first asked for under inference_mode, so training can save it for backward.
    with torch.inference_mode(False):
        return torch.tensor(values, dtype=dtype, device=device)


def constant(values, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.tensor(values, dtype, device)``, cached. ``values``: a number or (nested) tuples of numbers."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _make(values, device, dtype)
