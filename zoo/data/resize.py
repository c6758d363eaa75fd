"""MATLAB-compatible bicubic ``imresize`` in torch, the degradation and baseline of the SR literature.

What MATLAB's ``imresize(A, scale)`` (default ``'bicubic'``, antialiasing on) does, and this module too:

- kernel: Keys cubic with a = -0.5, support [-2, 2];
- when shrinking (scale < 1) the kernel is stretched by 1/scale and scaled by ``scale`` (antialiasing),
  so its support becomes 4/scale input pixels;
- output pixel ``x`` (1-based) samples input position ``u = x / scale + 0.5 (1 - 1/scale)``; the taps
  ``floor(u - width/2) + 0 .. ceil(width) + 1`` are weighted by the kernel and normalised to sum 1;
- taps outside the image are clamped to the first/last pixel (edge replication, MATLAB's
  ``min(max(1, indices), in_length)``; not mirror padding);
- the output size is ``ceil(scale * size)``; with ``size=`` the scale of each axis is ``out / in``;
- the two axes are resized one after the other, the one with the smaller scale first (MATLAB's
  ``sort(scale)``; ties: height, then width);
- on uint8 input each pass returns uint8 (rounded half away from zero, saturated to 0..255): this is
  ``quantize=True`` here, applied to [0, 1] floats on the 1/255 grid.

The MANIFEST of the shared data reports that exactly this (height then width, uint8 rounding after each
pass, replicated edges) reproduces the published bicubic Y-PSNR of Set5/Set14/BSD100/Urban100.

Implementation: each axis has ``p`` taps per output pixel (their input indices, clamped to the border,
and weights), built once per (in, out, scale) in float64 and cached. A short axis is one ``matmul``
with the dense (out, in) matrix. A longer one costs ``p`` instead of ``in`` multiply-adds per output
value: by an integer factor (x2, x1/4, ...: every SR scale) the taps repeat with the pixel grid, so the
pass is a polyphase filter of strided multiply-adds on the edge-replicated input (faster than the product
on photos, see ``_POLYPHASE_MIN_ENTRIES``); any other shrinking factor gathers its taps
(``_DENSE_MAX_ENTRIES``); any other enlarging factor stays dense. All agree to the last bit wherever the
sums are exact (integers times dyadic weights, as for x2 and x4), else to float rounding (the tests hold
every path to the MATLAB reference). Works for any float dtype (and uint8, as MATLAB does), any leading
dims ``(..., H, W)``, any scale, on the input's device.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["cubic", "resize_matrix", "imresize", "downscale", "upscale"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel, a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=256)
def _raw_taps(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(out_len, p) input indices (0-based, not yet brought inside the image) and float64 weights (rows
    sum to 1) of one pass; taps whose weight is zero for every output pixel are dropped."""
    width = 4.0
    if scale < 1 and antialias:
        def h(x):
            return scale * cubic(scale * x)

        width = width / scale
    else:
        h = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based input indices
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    idx = idx.astype(np.int64) - 1
    used = np.any(w != 0.0, axis=0)
    idx, w = idx[:, used], w[:, used]
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


@functools.lru_cache(maxsize=256)
def _taps(in_len: int, out_len: int, scale: float, antialias: bool, border: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_raw_taps` with the indices brought inside the image by ``border``."""
    idx, w = _raw_taps(in_len, out_len, scale, antialias)
    if border == "replicate":
        idx = np.clip(idx, 0, in_len - 1)
    elif border == "symmetric":  # half-sample symmetric: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        period = 2 * in_len
        idx = np.mod(idx, period)
        idx = np.where(idx >= in_len, period - 1 - idx, idx)
    else:
        raise ValueError(f"border must be 'replicate' or 'symmetric', got {border!r}")
    idx.setflags(write=False)
    return idx, w


@functools.lru_cache(maxsize=64)
def _phases(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[int, int, tuple, tuple] | None:
    """The pass as a polyphase filter, when the scale is an integer factor (x s or x 1/s).

    Then output ``o = P k + r`` reads inputs ``Q k + offsets[r][t]`` (replicated past the edges) with
    weights ``weights[r][t]`` that do not depend on ``k``: ``P = s, Q = 1`` when enlarging, ``P = 1,
    Q = s`` when shrinking. Returns ``(P, Q, offsets, weights)``, or None when the taps are not periodic
    like that (any other scale): checked on the real taps, not assumed.
    """
    factor = scale if scale >= 1 else 1.0 / scale
    s = round(factor)
    if s < 1 or abs(factor - s) > 1e-9:
        return None
    per, step = (s, 1) if scale >= 1 else (1, s)
    idx, w = _raw_taps(in_len, out_len, scale, antialias)
    if out_len < per:
        return None
    o = np.arange(out_len)
    r, k = o % per, o // per
    if not np.array_equal(idx - step * k[:, None], idx[r]) or np.abs(w - w[r]).max() > 1e-12:
        return None
    return (per, step, tuple(tuple(int(v) for v in row) for row in idx[:per]),
            tuple(tuple(float(v) for v in row) for row in w[:per]))


def _resize_axis_polyphase(y: torch.Tensor, dim: int, in_len: int, out_len: int, per: int, step: int,
                           offsets: tuple, weights: tuple) -> torch.Tensor:
    """One replicate-border pass as strided multiply-adds: ``p`` per output value, no index tensors."""
    periods = -(-out_len // per)
    lo = min(min(row) for row in offsets)
    hi = step * (periods - 1) + max(max(row) for row in offsets)
    pad_lo, pad_hi = max(0, -lo), max(0, hi - (in_len - 1))

    def edge(at: int, n: int) -> torch.Tensor:  # the pixel at ``at`` repeated n times along dim
        shape = list(y.shape)
        shape[dim] = n
        return y.narrow(dim, at, 1).expand(shape)

    parts = ([edge(0, pad_lo)] if pad_lo else []) + [y] + ([edge(in_len - 1, pad_hi)] if pad_hi else [])
    padded = torch.cat(parts, dim) if len(parts) > 1 else y
    shape = list(y.shape)
    shape[dim] = out_len
    out = y.new_empty(shape)
    for r in range(per):
        count = len(range(r, out_len, per))
        if count == 0:
            continue
        dst = _every(out, dim, r, count, per)
        for t, offset in enumerate(offsets[r]):
            src = _every(padded, dim, offset + pad_lo, count, step)
            if t == 0:
                torch.mul(src, weights[r][t], out=dst)
            else:
                dst.add_(src, alpha=weights[r][t])
    return out


def _every(x: torch.Tensor, dim: int, first: int, count: int, stride: int) -> torch.Tensor:
    """The view of ``count`` positions ``first, first + stride, ...`` of ``x`` along ``dim``."""
    view = x.narrow(dim, first, stride * (count - 1) + 1)
    return view[..., ::stride, :] if dim == -2 else view[..., ::stride]


@functools.lru_cache(maxsize=64)
def _matrix(in_len: int, out_len: int, scale: float, antialias: bool, border: str) -> torch.Tensor:
    idx, w = _taps(in_len, out_len, scale, antialias, border)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
    return torch.from_numpy(m)  # cached: callers must not modify it in place


@functools.lru_cache(maxsize=64)
def _tap_tensors(in_len: int, out_len: int, scale: float, antialias: bool, border: str):
    idx, w = _taps(in_len, out_len, scale, antialias, border)
    return torch.from_numpy(np.array(idx.T)), torch.from_numpy(np.array(w.T))  # (p, out) each


# A shrinking pass by a non-integer factor gathers its taps above this many (out x in) entries: there the gather
# beats the dense product, below it loses. Enlarging passes never gather (slower at every size tried).
# Timings: benchmark/perf/NOTES.md#resize.
_DENSE_MAX_ENTRIES = 1 << 17
# An integer-factor pass (x s, x 1/s) runs as a polyphase filter above this many entries; on small patches the
# dense product is faster (benchmark/perf/NOTES.md#resize).
_POLYPHASE_MIN_ENTRIES = 1 << 14


def _resize_axis(y: torch.Tensor, dim: int, in_len: int, out_len: int, scale: float, antialias: bool,
                 border: str) -> torch.Tensor:
    """One pass along ``dim`` (-2 or -1) of ``y`` (float, ..., H, W)."""
    if border == "replicate" and in_len * out_len > _POLYPHASE_MIN_ENTRIES:
        phases = _phases(in_len, out_len, scale, antialias)
        if phases is not None:
            if dim == -2 or phases[0] > 1:
                return _resize_axis_polyphase(y, dim, in_len, out_len, *phases)
            # Shrinking along the innermost axis would read every input with a stride (scalar loops);
            # along rows, each multiply-add runs over contiguous rows (vectorised), and the two
            # transposing copies cost less than the difference.
            flipped = _resize_axis_polyphase(y.transpose(-1, -2).contiguous(), -2, in_len, out_len, *phases)
            return flipped.transpose(-1, -2).contiguous()
    if out_len >= in_len or in_len * out_len <= _DENSE_MAX_ENTRIES:
        m = _matrix(in_len, out_len, scale, antialias, border).to(device=y.device, dtype=y.dtype)
        return torch.matmul(m, y) if dim == -2 else torch.matmul(y, m.T)
    index, weight = _tap_tensors(in_len, out_len, scale, antialias, border)
    index, weight = index.to(y.device), weight.to(device=y.device, dtype=y.dtype)
    if dim == -2:
        weight = weight[:, :, None]  # (p, out, 1): broadcast along the rows' width
    out = y.index_select(dim, index[0]).mul_(weight[0])
    for t in range(1, index.shape[0]):
        out.addcmul_(y.index_select(dim, index[t]), weight[t])
    return out


def resize_matrix(
    in_len: int, out_len: int, scale: float | None = None, *, antialias: bool = True, border: str = "replicate"
) -> torch.Tensor:
    """The (out_len, in_len) float64 matrix of one MATLAB bicubic resize pass (rows sum to 1)."""
    if scale is None:
        scale = out_len / in_len
    return _matrix(int(in_len), int(out_len), float(scale), bool(antialias), border).clone()


def _out_len(n: int, s: float) -> int:
    # MATLAB: ceil(scale * size). The tolerance absorbs float error such as 300 * (1/3) = 100.00000000000001
    # (MATLAB itself would give 101 there; nobody wants that).
    return max(1, int(math.ceil(n * s - 1e-9)))


def _pair(v, what):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{what} must be a number or a pair, got {v!r}")
        return float(v[0]), float(v[1])
    return float(v), float(v)


def _round_u8_(x: torch.Tensor) -> torch.Tensor:
    # uint8 conversion of MATLAB: saturate, round half away from zero (values are >= 0 after clamping).
    # In place: x is always a fresh tensor here, and image-sized temporaries cost page faults on every call
    # (benchmark/perf/NOTES.md#resize).
    return x.clamp_(0.0, 255.0).add_(0.5).floor_()


def imresize(
    x: torch.Tensor,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    *,
    quantize: bool = False,
    antialias: bool = True,
    border: str = "replicate",
) -> torch.Tensor:
    """Resize ``x`` (..., H, W) exactly like MATLAB ``imresize(x, scale)`` / ``imresize(x, [h w])``, bicubic.

    Give ``scale`` (a number or ``(sh, sw)``; output ``ceil(scale * size)``) or ``size=(h, w)`` (scales
    ``h/H``, ``w/W``), or both (then ``size`` sets the output and ``scale`` the kernel, as MATLAB does
    internally). ``quantize=True`` treats ``x`` as an 8-bit image in [0, 1]: the input is snapped to the
    1/255 grid and every pass is rounded and saturated like MATLAB on uint8 input, so the output is
    k/255. Otherwise the result is float, unclamped (bicubic overshoots). A ``uint8`` tensor (0..255) is
    resized as MATLAB resizes uint8 images: rounded after every pass, returned as ``uint8`` (the same
    values as ``quantize=True`` on ``x / 255``, without the conversions). ``border='symmetric'`` mirrors
    instead of replicating edges (not MATLAB; for comparison only).
    """
    if x.dim() < 2:
        raise ValueError(f"expected (..., H, W), got shape {tuple(x.shape)}")
    as_uint8 = x.dtype == torch.uint8
    if not (x.is_floating_point() or as_uint8):
        raise TypeError(f"expected a floating-point tensor in [0, 1] or uint8, got {x.dtype}")
    in_h, in_w = x.shape[-2:]
    if scale is None and size is None:
        raise ValueError("give scale or size")
    if size is not None:
        out_h, out_w = (int(size[0]), int(size[1]))
        if out_h < 1 or out_w < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        sh, sw = _pair(scale, "scale") if scale is not None else (out_h / in_h, out_w / in_w)
    else:
        sh, sw = _pair(scale, "scale")
        if sh <= 0 or sw <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        out_h, out_w = _out_len(in_h, sh), _out_len(in_w, sw)

    orig_dtype = x.dtype
    quantize = quantize or as_uint8
    if quantize:
        # float64 so that sums of integers times dyadic weights land exactly on .5 when MATLAB's do
        # (MPS has no float64).
        dt = torch.float32 if x.device.type == "mps" else torch.float64
        if as_uint8:  # already the integers
            y = x.to(dt, memory_format=torch.contiguous_format)
        else:
            y = _round_u8_(x.to(dt) * 255.0)
    else:
        dt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        y = x.to(dt)

    passes = [(0, sh, in_h, out_h), (1, sw, in_w, out_w)]
    passes.sort(key=lambda p: p[1])  # stable: ties keep height first
    for axis, s, n_in, n_out in passes:
        if n_in == n_out and s == 1.0:
            continue  # identity (MATLAB's weights are a unit impulse here)
        y = _resize_axis(y, -2 if axis == 0 else -1, n_in, n_out, s, antialias, border)
        if quantize:
            y = _round_u8_(y)
    if as_uint8:
        return y.to(torch.uint8)
    if quantize:
        y = y.div_(255.0)
    return y.to(orig_dtype)


def downscale(hr: torch.Tensor, scale: int, *, quantize: bool = True) -> torch.Tensor:
    """LR image of the SR benchmarks: MATLAB ``imresize(hr, 1/scale, 'bicubic')`` on uint8 data.

    ``hr`` (..., H, W) in [0, 1] should be modcropped (see :func:`zoo.data.degrade.modcrop`); the output is
    (..., H // scale, W // scale) on the 1/255 grid (``quantize=False`` keeps it float).
    """
    s = int(scale)
    if s != scale or s < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = hr.shape[-2:]
    if h % s or w % s:
        raise ValueError(f"image size {h}x{w} is not a multiple of {s}; modcrop it first")
    return imresize(hr, scale=1.0 / s, size=(h // s, w // s), quantize=quantize)


def upscale(lr: torch.Tensor, scale: int, *, quantize: bool = True) -> torch.Tensor:
    """The bicubic baseline: MATLAB ``imresize(lr, scale, 'bicubic')`` on uint8 data."""
    s = int(scale)
    if s != scale or s < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = lr.shape[-2:]
    return imresize(lr, scale=float(s), size=(h * s, w * s), quantize=quantize)
