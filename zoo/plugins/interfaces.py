"""The two model interfaces every registered model implements.

Conventions are fixed here once so that the harness, metrics and every plugin agree:
- images are float tensors (B, C, H, W) on any device;
- RGB is sRGB in [0, 1];
- L is CIELAB lightness in [0, 100]; ab are CIELAB a*, b* in their natural units (about -110..110).
Models normalise internally however their paper does.
"""

from __future__ import annotations

import torch
from torch import nn


class Colorizer(nn.Module):
    """Maps L (B, 1, H, W) to ab (B, 2, H, W) at the same size."""

    task = "colorizer"

    def forward(self, l: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class SuperResolver(nn.Module):
    """Maps RGB (B, 3, h, w) to RGB (B, 3, scale*h, scale*w)."""

    task = "sr"

    def __init__(self, scale: int):
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        self.scale = int(scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
