"""Colour conversions used by every model and metric: sRGB <-> CIELAB, BT.601 luma, L -> grey RGB.

Conventions (see :mod:`zoo.plugins.interfaces`): tensors are batched ``(B, C, H, W)`` (any leading dims are accepted
as long as the channel dim is third from last), on any device; RGB is sRGB in [0, 1]; L is in [0, 100];
a*, b* are in CIELAB units. Everything is written with torch ops so it runs on the input's device and
dtype (half / bfloat16 are computed in float32 and cast back), and it is differentiable: the branches of
the piecewise sRGB and Lab curves are evaluated on clamped arguments, so ``pow`` and ``cbrt`` never see a
value at which their derivative is infinite or NaN.

Constants: the sRGB -> XYZ matrix and the D65 (2 degree observer) white point are those of
``skimage.color`` (``xyz_from_rgb`` and ``(0.95047, 1.0, 1.08883)``). The Lab curve uses the exact CIE
constants ``eps = (6/29)**3`` and slope ``(29/6)**2 / 3`` (skimage rounds them to 0.008856 and 7.787);
this changes L, a, b by at most 2e-4 and makes :func:`rgb_to_lab` and :func:`lab_to_rgb` exact inverses.
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.runtime.constants import constant

__all__ = [
    "XYZ_FROM_RGB",
    "RGB_FROM_XYZ",
    "WHITE_D65",
    "rgb_to_xyz",
    "xyz_to_rgb",
    "rgb_to_lab",
    "lab_to_rgb",
    "split_lab",
    "join_lab",
    "rgb_to_y",
    "gray_to_rgb",
    "srgb_to_linear",
    "linear_to_srgb",
]

# sRGB (linear) -> XYZ, as in skimage.color.colorconv.xyz_from_rgb.
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# Its inverse (XYZ -> linear sRGB), computed once in float64.
RGB_FROM_XYZ = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(np.array(XYZ_FROM_RGB, dtype=np.float64)))
# D65, 2 degree observer, as in skimage.color.xyz_tristimulus_values("D65", "2").
WHITE_D65 = (0.95047, 1.0, 1.08883)

_DELTA = 6.0 / 29.0
_EPS = _DELTA**3  # 0.008856...
_SLOPE = 1.0 / (3.0 * _DELTA**2)  # 7.787...
_OFFSET = 4.0 / 29.0  # 16/116

# BT.601 luma for 8-bit studio range, as in MATLAB rgb2ycbcr with R, G, B in [0, 1].
_Y_COEFFS = (65.481, 128.553, 24.966)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype} (convert uint8 images with x / 255)")
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _check_channels(x: torch.Tensor, c: int, what: str) -> None:
    if x.dim() < 3 or x.shape[-3] != c:
        raise ValueError(f"{what} must have shape (B, {c}, H, W) (channel dim third from last), got {tuple(x.shape)}")


def _matrix(rows, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return constant(rows, like.device, dtype)  # cached per device and dtype: no host round trip per call


def _apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # (3, 3) x (..., 3, H, W) -> (..., 3, H, W)
    return torch.einsum("ij,...jhw->...ihw", m, x)


# -- sRGB companding -----------------------------------------------------------------------------------
def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB gamma expansion (IEC 61966-2-1), elementwise, any shape. Negative values use the linear part."""
    t = 0.04045
    hi = ((rgb.clamp(min=t) + 0.055) / 1.055) ** 2.4
    return torch.where(rgb > t, hi, rgb / 12.92)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """sRGB gamma compression, elementwise, any shape, unclamped (values > 1 use the power curve)."""
    t = 0.0031308
    hi = 1.055 * lin.clamp(min=t) ** (1.0 / 2.4) - 0.055
    return torch.where(lin > t, hi, lin * 12.92)


def rgb_to_xyz(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B, 3, H, W) -> CIE XYZ (Y of white = 1)."""
    _check_channels(rgb, 3, "rgb")
    dt = _work_dtype(rgb)
    x = rgb.to(dt)
    return _apply_matrix(_matrix(XYZ_FROM_RGB, x, dt), srgb_to_linear(x)).to(rgb.dtype)


def xyz_to_rgb(xyz: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """CIE XYZ (B, 3, H, W) -> sRGB; clipped to [0, 1] when ``clamp``."""
    _check_channels(xyz, 3, "xyz")
    dt = _work_dtype(xyz)
    x = xyz.to(dt)
    out = linear_to_srgb(_apply_matrix(_matrix(RGB_FROM_XYZ, x, dt), x))
    if clamp:
        out = out.clamp(0.0, 1.0)
    return out.to(xyz.dtype)


# -- CIELAB --------------------------------------------------------------------------------------------
def _f(t: torch.Tensor) -> torch.Tensor:
    # cbrt for t > eps, linear below; the clamp keeps the cbrt gradient finite (it is 1/(3 t^(2/3))).
    return torch.where(t > _EPS, t.clamp(min=_EPS) ** (1.0 / 3.0), t * _SLOPE + _OFFSET)


def _f_inv(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > _DELTA, f**3, (f - _OFFSET) / _SLOPE)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (B, 3, H, W) -> CIELAB (B, 3, H, W): L in [0, 100], a*, b* in Lab units.

    D65 white, skimage's matrix; agrees with ``skimage.color.rgb2lab`` to < 1e-3. Differentiable, with
    finite gradients everywhere (including black and negative inputs). Inputs are not clamped.
    """
    _check_channels(rgb, 3, "rgb")
    dt = _work_dtype(rgb)
    x = rgb.to(dt)
    xyz = _apply_matrix(_matrix(XYZ_FROM_RGB, x, dt), srgb_to_linear(x))
    white = constant(WHITE_D65, x.device, dt).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(dim=-3)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab.to(rgb.dtype)


def lab_to_rgb(lab: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """CIELAB (B, 3, H, W) -> sRGB (B, 3, H, W).

    With ``clamp=True`` (default) the result is clipped to [0, 1], which is what ``skimage.color.lab2rgb``
    returns (agreement < 1e-3). With ``clamp=False`` out-of-gamut colours come back outside [0, 1]
    (linear-light values below 0 use the linear segment, above 1 the power curve), which is what a gamut
    test needs. Like skimage, the intermediate ``fz = fy - b/200`` is clipped at 0 (z < 0 is not a colour).
    """
    _check_channels(lab, 3, "lab")
    dt = _work_dtype(lab)
    x = lab.to(dt)
    L, a, b = x.unbind(dim=-3)
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp(min=0.0)
    white = constant(WHITE_D65, x.device, dt).view(3, 1, 1)
    xyz = _f_inv(torch.stack((fx, fy, fz), dim=-3)) * white
    out = linear_to_srgb(_apply_matrix(_matrix(RGB_FROM_XYZ, x, dt), xyz))
    if clamp:
        out = out.clamp(0.0, 1.0)
    return out.to(lab.dtype)


def split_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB (B, 3, H, W) -> ``(L (B, 1, H, W), ab (B, 2, H, W))``."""
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :], lab[..., 1:, :, :]


def join_lab(L: torch.Tensor, ab: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """``L (B, 1, H, W)`` and ``ab (B, 2, H, W)`` -> sRGB (B, 3, H, W), clipped to [0, 1] when ``clamp``."""
    _check_channels(L, 1, "L")
    _check_channels(ab, 2, "ab")
    if L.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"L and ab sizes differ: {tuple(L.shape)} vs {tuple(ab.shape)}")
    return lab_to_rgb(torch.cat((L, ab.to(L.dtype)), dim=-3), clamp=clamp)


def rgb_to_y(rgb: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """BT.601 luma in studio range, (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [16, 235] (0..255 units).

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``: the Y of MATLAB's ``rgb2ycbcr`` for [0, 1] input, and the
    Y used by the SR literature (BasicSR ``rgb2ycbcr(y_only=True)``, EDSR). The result is a float and is
    *not* rounded to integers (MATLAB rounds when its input is uint8); the metrics use it unrounded, like
    BasicSR and EDSR. ``data_range=255`` takes RGB in 0..255 instead (Y is in 0..255 units either way).
    """
    _check_channels(rgb, 3, "rgb")
    dt = _work_dtype(rgb)
    x = rgb.to(dt)
    c = [k / data_range for k in _Y_COEFFS]
    y = torch.mul(x[..., 0:1, :, :], c[0])
    y.add_(x[..., 1:2, :, :], alpha=c[1]).add_(x[..., 2:3, :, :], alpha=c[2]).add_(16.0)
    return y.to(rgb.dtype)


def gray_to_rgb(L: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] -> neutral sRGB (B, 3, H, W) with R = G = B, clipped to [0, 1].

    The grey of lightness L: the sRGB value whose relative luminance Y is that of L. It is exactly neutral
    (the three channels are equal), and differs from ``join_lab(L, 0)`` by < 2e-4 because skimage's
    matrix rows do not sum exactly to the D65 white point. ``rgb_to_lab(gray_to_rgb(L))`` returns L.
    """
    _check_channels(L, 1, "L")
    dt = _work_dtype(L)
    x = L.to(dt)
    y = _f_inv((x + 16.0) / 116.0)
    # Luminance of an R=G=B grey is the second row sum of the matrix times the linear value.
    lin = y / sum(XYZ_FROM_RGB[1])
    g = linear_to_srgb(lin).clamp(0.0, 1.0)
    return g.expand(*g.shape[:-3], 3, *g.shape[-2:]).contiguous().to(L.dtype)
