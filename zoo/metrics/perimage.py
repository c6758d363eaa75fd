"""What metrics scored image by image share: the input check and the summary of their per-image values."""

from __future__ import annotations

import numpy as np
import torch

from zoo.plugins.metric_interface import MetricInfo, MetricResult


def check_pair(pred: torch.Tensor, target: torch.Tensor | None) -> None:
    """``pred`` is a batch of RGB images (B, 3, H, W) and ``target`` (if given) has its shape."""
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(pred.shape)}")
    if target is not None and pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def per_image_result(info: MetricInfo, values: list[float], weights: dict[str, str] | None = None) -> MetricResult:
    """The set's result from per-image values: their mean, their population standard deviation (ddof = 0,
    as PSNR/SSIM and KID report it), the count and the values in update order."""
    if not values:
        return MetricResult(info, None, unavailable="no images", weights=dict(weights or {}))
    arr = np.asarray(values, dtype=np.float64)
    return MetricResult(info, float(arr.mean()), std=float(arr.std()), n=len(values), per_image=list(values),
                        weights=dict(weights or {}))
