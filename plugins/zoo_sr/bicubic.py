"""``bicubic``: the reference upscaler of every SR table, MATLAB-compatible bicubic interpolation.

It uses the same resize as the benchmark's degradation (cubic kernel a = -0.5, edge pixels replicated), so
its scores match the published bicubic rows (Set5 x2: 33.66 dB Y-PSNR).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

import zoo


@dataclass
class BicubicConfig:
    scale: int = 2


class Bicubic(zoo.SuperResolver):
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return F.interpolate(rgb, scale_factor=self.scale, mode="bicubic", align_corners=False)


ENTRY = zoo.ModelEntry(
    name="bicubic",
    build=lambda cfg: Bicubic(cfg.scale),
    config=BicubicConfig,
    summary="Reference baseline: MATLAB-compatible bicubic upscaling",
    reference="baseline",
)
