"""``bicubic``: the reference upscaler of every SR table, MATLAB-compatible bicubic interpolation.

It uses the same resize as the benchmark's degradation (cubic kernel a = -0.5, edge pixels replicated), and
by default it works like MATLAB ``imresize`` on an 8-bit image (input snapped to the 1/255 grid, each pass
rounded), so its scores reproduce the published bicubic rows (Set5 x2: 33.66 dB Y-PSNR).
"""

from dataclasses import dataclass

import torch

import zoo
from zoo import imresize


@dataclass
class BicubicConfig(zoo.SRConfig):
    scale: int = 2
    quantize: bool = True  # behave like MATLAB on uint8 images; False keeps float precision


class Bicubic(zoo.SuperResolver):
    def __init__(self, cfg: BicubicConfig):
        super().__init__(cfg.scale)
        self.quantize = cfg.quantize

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        return imresize(rgb, scale=float(self.scale), size=(h * self.scale, w * self.scale),
                        quantize=self.quantize)


ENTRY = zoo.ModelEntry(
    name="bicubic",
    build=Bicubic,
    config=BicubicConfig,
    summary="Reference baseline: MATLAB-compatible bicubic upscaling",
    reference="baseline (Keys 1981 cubic convolution, a = -0.5, as MATLAB imresize)",
)
