"""The SR degradation of the benchmark: modcrop, MATLAB bicubic downscale on uint8 data, and the L channel.

``make_triple(hr, scale)`` gives everything a benchmark needs from one HR batch: the modcropped HR
(the ground truth), the LR RGB image an SR model gets (MATLAB ``imresize(hr, 1/scale)`` on uint8 data,
so values are k/255), and the LR lightness a colorizer gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.data.color import rgb_to_lab
from zoo.data.resize import downscale

__all__ = ["Triple", "modcrop", "make_triple"]


def modcrop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) to a multiple of ``scale``, anchored top-left: ``img[..., :H - H % s, :W - W % s]``.

    This is the anchoring of the published HR crops (GTmod12 and SelfExSR's per-scale HR images).
    """
    s = int(scale)
    if s != scale or s < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = img.shape[-2:]
    if h < s or w < s:
        raise ValueError(f"image {h}x{w} is smaller than the scale {s}")
    return img[..., : h - h % s, : w - w % s]


@dataclass
class Triple:
    """HR ground truth (B, 3, H, W), LR RGB (B, 3, H/s, W/s) on the 1/255 grid, LR L (B, 1, H/s, W/s)."""

    hr: torch.Tensor
    lr: torch.Tensor
    lr_l: torch.Tensor

    @property
    def scale(self) -> int:
        return self.hr.shape[-1] // self.lr.shape[-1]


def make_triple(hr_rgb: torch.Tensor, scale: int) -> Triple:
    """Modcrop ``hr_rgb`` (B, 3, H, W) in [0, 1] and derive its LR RGB and LR lightness.

    A single-channel (B, 1, H, W) grey image is replicated to RGB first. The LR image is the MATLAB
    bicubic downscale with uint8 rounding after each pass (:func:`zoo.data.resize.downscale`), and ``lr_l``
    is the CIELAB L of that LR RGB image.
    """
    if hr_rgb.dim() == 3:
        raise ValueError(f"expected a batch (B, 3, H, W), got {tuple(hr_rgb.shape)}; use x[None]")
    if hr_rgb.dim() != 4 or hr_rgb.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 3, H, W) RGB, got {tuple(hr_rgb.shape)}")
    if hr_rgb.shape[1] == 1:
        hr_rgb = hr_rgb.expand(-1, 3, -1, -1)
    hr = modcrop(hr_rgb, scale).contiguous()
    lr = downscale(hr, scale, quantize=True)
    lr_l = rgb_to_lab(lr)[:, :1]
    return Triple(hr=hr, lr=lr, lr_l=lr_l)
