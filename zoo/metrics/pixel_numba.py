"""Fused CPU kernels for PSNR and SSIM, compiled by numba (``pip install 'zoo[fast]'``).

Why they exist: in eager torch, PSNR makes about nine passes over an image (clamp, scale and round each
image, subtract, weight the channels, square and sum) and SSIM about fifty; on a CPU each pass costs about
as much as the arithmetic it does. These kernels go through the image one row at a time and keep every
intermediate in cache: each input value is read once. They follow :mod:`zoo.metrics.pixel`'s convention
exactly (same rounding in the input's precision, same valid-window SSIM); the 8-bit PSNR sums are exact and
everything else is float64, so they agree with skimage to about 1e-14. :mod:`zoo.metrics.pixel` decides when
to use them. Measurements and what was tried instead: benchmark/perf/NOTES.md#fused-kernels.

Every kernel works on one image and one thread: an image's score never depends on its batch or on the
thread count. Compiled code is cached on disk by numba (next to this file, or in its user cache directory),
so only the first use on a machine pays the compilation (a few seconds).

The kernels read an image in place, through a flat view of its tensor's memory and the steps between its
channels and rows (:func:`images`): a cropped or batched tensor is not copied. A compared plane is
``offset + sum_k weights[k] * units(channel k)``, where ``units`` is ``round(clamp(x, 0, 1) * 255)`` in the
image's precision (``quantize``) or ``x * 255`` in float64: one channel with weight 1 for RGB, the three
with the luma coefficients for Y.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["Image", "images", "sum_squared_difference", "ssim_mean", "SSIM_WINDOW"]

SSIM_WINDOW = 11  # the filters below are written out for this many taps


def _kernel(**flags):
    """``numba.njit`` with an on-disk cache, or without one where no cache directory can be written."""
    def wrap(fn):
        try:
            return numba.njit(cache=True, nogil=True, error_model="numpy", **flags)(fn)
        except RuntimeError:  # "no locator available": neither this folder nor a user cache is writable
            return numba.njit(cache=False, nogil=True, error_model="numpy", **flags)(fn)
    return wrap


# Sums may be reordered (vectorised); nothing else is: the rounding and the filters keep their order. NaN
# inputs need no test of their own: the clamp (numba's max/min return a NaN first argument) and every sum
# carry them to the result, as in the torch path.
_REDUCE = {"reassoc"}


@_kernel(inline="always")
def _units8(v, zero, one, scale):
    """round(clamp(v, 0, 1) * 255) in v's precision (``scale`` = 255 of that type), as torch rounds it."""
    return np.rint(min(max(v, zero), one) * scale)


@_kernel(inline="always")
def _channels(x, at, step, n):
    """The n values from ``at`` in each of the three channels. Slices indexed from 0 vectorise; x[at + j]
    does not (numba's negative-index check)."""
    return x[at:at + n], x[at + step:at + step + n], x[at + 2 * step:at + 2 * step + n]


@_kernel()
def _row_units(x, base, step, planes, w, weights, offset, scale, quantize, out):
    """``out[:w]`` = one row of a compared image: ``offset + sum_k weights[k] * units(x[base + k step + j])``."""
    one = scale / scale  # 1 and 0 in the planes' precision, so the clamp and the product round as torch does
    zero = scale - scale
    for j in range(w):
        out[j] = offset
    for k in range(planes):
        wk = weights[k]
        row = x[base + k * step:base + k * step + w]  # a row view indexed from 0 vectorises; x[at + j] does not
        if quantize:
            for j in range(w):
                out[j] += wk * np.float64(_units8(row[j], zero, one, scale))
        else:
            for j in range(w):
                out[j] += wk * (np.float64(row[j]) * 255.0)


# 8-bit images differ by integers, |d| <= 255, so d^2 <= 65025 and a float32 sum of up to 258 of them is an
# integer below 2^24: exact in any order. The quantized kernel sums chunks of 256 values in float32 (twice the
# SIMD width of float64) and the chunks in float64: its totals are exact, whatever the vectorisation.
_EXACT_CHUNK = 256


@_kernel(inline="always")
def _gram_step(s, d0, d1, d2):
    """The six sums of products (d0 d0, d1 d1, d2 d2, d0 d1, d0 d2, d1 d2), one pixel further."""
    return (s[0] + d0 * d0, s[1] + d1 * d1, s[2] + d2 * d2, s[3] + d0 * d1, s[4] + d0 * d2, s[5] + d1 * d2)


@_kernel(inline="always")
def _add_gram(g, s):
    for k in range(6):
        g[k] += s[k]


@_kernel(fastmath=_REDUCE)
def _gram_quantized(a, base_a, step_a, row_a, b, base_b, step_b, row_b, h, w, scale_a, scale_b):
    """The sums of d_k d_l over h x w pixels, d = units(a) - units(b) per channel, for 8-bit units: exact.

    Returns (G00, G11, G22, G01, G02, G12). The RGB sum of squares is G00 + G11 + G22; a weighted difference
    sum_k c_k d_k (luma) has the sum of squares c^T G c, so PSNR on Y needs no rounding before that last step.
    The three cross products cost nothing measurable: reading the images from memory dominates.
    """
    one_a, zero_a = scale_a / scale_a, scale_a - scale_a
    one_b, zero_b = scale_b / scale_b, scale_b - scale_b
    g = np.zeros(6)
    for r in range(h):
        for j0 in range(0, w, _EXACT_CHUNK):
            n = min(_EXACT_CHUNK, w - j0)
            pa = base_a + r * row_a + j0
            pb = base_b + r * row_b + j0
            a0, a1, a2 = _channels(a, pa, step_a, n)
            b0, b1, b2 = _channels(b, pb, step_b, n)
            z = np.float32(0.0)
            s = (z, z, z, z, z, z)
            for j in range(n):
                s = _gram_step(s, _units8(a0[j], zero_a, one_a, scale_a) - _units8(b0[j], zero_b, one_b, scale_b),
                               _units8(a1[j], zero_a, one_a, scale_a) - _units8(b1[j], zero_b, one_b, scale_b),
                               _units8(a2[j], zero_a, one_a, scale_a) - _units8(b2[j], zero_b, one_b, scale_b))
            _add_gram(g, s)
    return g


@_kernel(fastmath=_REDUCE)
def _gram_float(a, base_a, step_a, row_a, b, base_b, step_b, row_b, h, w):
    """:func:`_gram_quantized` for unrounded units (x * 255), in float64."""
    g = np.zeros(6)
    for r in range(h):
        pa = base_a + r * row_a
        pb = base_b + r * row_b
        a0, a1, a2 = _channels(a, pa, step_a, w)
        b0, b1, b2 = _channels(b, pb, step_b, w)
        s = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for j in range(w):
            s = _gram_step(s, (np.float64(a0[j]) - np.float64(b0[j])) * 255.0,
                           (np.float64(a1[j]) - np.float64(b1[j])) * 255.0,
                           (np.float64(a2[j]) - np.float64(b2[j])) * 255.0)
        _add_gram(g, s)
    return g


# The Gaussian is symmetric (t[k] = t[10 - k]): pairs are added before they are weighted, and the sum is a
# shallow tree rather than a chain of 11 dependent multiply-adds, so the vectorised loop is not latency bound.
@_kernel()
def _filter_row(s, o, n, t0, t1, t2, t3, t4, t5):
    for j in range(n):
        o[j] = ((((s[j] + s[j + 10]) * t0 + (s[j + 1] + s[j + 9]) * t1)
                 + ((s[j + 2] + s[j + 8]) * t2 + (s[j + 3] + s[j + 7]) * t3))
                + ((s[j + 4] + s[j + 6]) * t4 + s[j + 5] * t5))


@_kernel()
def _filter_column(ring, first, o, n, t0, t1, t2, t3, t4, t5):
    """``o[:n]`` = the 11 rows of ``ring`` (a circular buffer whose oldest row is ``first``) filtered."""
    r0, r1, r2, r3, r4, r5 = ring[first % 11], ring[(first + 1) % 11], ring[(first + 2) % 11], \
        ring[(first + 3) % 11], ring[(first + 4) % 11], ring[(first + 5) % 11]
    r6, r7, r8, r9, r10 = ring[(first + 6) % 11], ring[(first + 7) % 11], ring[(first + 8) % 11], \
        ring[(first + 9) % 11], ring[(first + 10) % 11]
    for j in range(n):
        o[j] = ((((r0[j] + r10[j]) * t0 + (r1[j] + r9[j]) * t1)
                 + ((r2[j] + r8[j]) * t2 + (r3[j] + r7[j]) * t3))
                + ((r4[j] + r6[j]) * t4 + r5[j] * t5))


@_kernel(fastmath=_REDUCE)
def _ssim_row_sum(mu_a, mu_b, e_sq, e_ab, n, c1, c2):
    """Sum over a row of the SSIM map from the filtered a, b, a^2 + b^2 and ab."""
    acc = 0.0
    for j in range(n):
        ab = mu_a[j] * mu_b[j]
        sq = mu_a[j] * mu_a[j] + mu_b[j] * mu_b[j]
        acc += ((2.0 * ab + c1) * (2.0 * (e_ab[j] - ab) + c2)) / ((sq + c1) * (e_sq[j] - sq + c2))
    return acc


@_kernel()
def _ssim_mean(a, base_a, step_a, row_a, b, base_b, step_b, row_b, planes, weights, offset, h, w, scale_a, scale_b,
               quantize, t0, t1, t2, t3, t4, t5, c1, c2):
    ho, wo = h - 10, w - 10
    ring = np.empty((4, 11, wo))  # the last 11 rows of each statistic, filtered along the row
    xa = np.empty(w)
    xb = np.empty(w)
    sq = np.empty(w)
    ab = np.empty(w)
    col = np.empty((4, wo))
    total = 0.0
    for r in range(h):
        _row_units(a, base_a + r * row_a, step_a, planes, w, weights, offset, scale_a, quantize, xa)
        _row_units(b, base_b + r * row_b, step_b, planes, w, weights, offset, scale_b, quantize, xb)
        for j in range(w):
            sq[j] = xa[j] * xa[j] + xb[j] * xb[j]
            ab[j] = xa[j] * xb[j]
        slot = r % 11
        _filter_row(xa, ring[0, slot], wo, t0, t1, t2, t3, t4, t5)
        _filter_row(xb, ring[1, slot], wo, t0, t1, t2, t3, t4, t5)
        _filter_row(sq, ring[2, slot], wo, t0, t1, t2, t3, t4, t5)
        _filter_row(ab, ring[3, slot], wo, t0, t1, t2, t3, t4, t5)
        if r >= 10:
            for s in range(4):
                _filter_column(ring[s], r + 1, col[s], wo, t0, t1, t2, t3, t4, t5)
            total += _ssim_row_sum(col[0], col[1], col[2], col[3], wo, c1, c2)
    return total / (ho * wo)


class Image:
    """One image of a (B, C, H, W) tensor as the kernels address it: a flat float array (a view of the tensor's
    memory, nothing copied when rows are contiguous) and the offsets of its pixels."""

    __slots__ = ("flat", "base", "channel_step", "row_step", "scale")

    def __init__(self, flat, base, channel_step, row_step, scale):
        self.flat, self.base, self.channel_step, self.row_step = flat, base, channel_step, row_step
        self.scale = scale  # 255 in the image's precision: its values are rounded in that precision

    def at(self, top: int, left: int) -> int:
        return self.base + top * self.row_step + left


_SCALES = {np.dtype(np.float32): np.float32(255.0), np.dtype(np.float64): np.float64(255.0)}


def images(x) -> list[Image]:
    """Per image of ``x`` ((B, C, H, W) float32 or float64 torch tensor on the CPU), its :class:`Image`.

    A grey image (C = 1) gets a channel step of 0: its one plane stands for three equal channels. Rows must
    be contiguous (unit stride along W); anything else, e.g. channels_last, is made contiguous first.
    """
    if x.stride(-1) != 1:
        x = x.contiguous()
    (n, c, h, w), (sn, sc, sh, _) = x.shape, x.stride()
    if n == 0:
        return []
    span = (n - 1) * sn + (c - 1) * sc + (h - 1) * sh + w
    flat = x.as_strided((span,), (1,)).numpy()  # the memory from the first pixel to the last, in place
    channel_step, scale = (sc if c == 3 else 0), _SCALES[flat.dtype]
    return [Image(flat, i * sn, channel_step, sh, scale) for i in range(n)]


def sum_squared_difference(a: Image, b: Image, *, shave: int, h: int, w: int, quantize: bool,
                           weights: np.ndarray | None = None) -> float:
    """Sum of squared differences over the h x w pixels after ``shave``, float64, summed over the three
    channels, or (``weights``) of the weighted channel sum, e.g. luma (NaN if any input is NaN)."""
    args = (a.flat, a.at(shave, shave), a.channel_step, a.row_step, b.flat, b.at(shave, shave), b.channel_step,
            b.row_step, h, w)
    g = _gram_quantized(*args, a.scale, b.scale) if quantize else _gram_float(*args)
    if weights is None:
        return float(g[0] + g[1] + g[2])
    c0, c1, c2 = (float(c) for c in weights)
    return float(c0 * c0 * g[0] + c1 * c1 * g[1] + c2 * c2 * g[2]
                 + 2.0 * (c0 * c1 * g[3] + c0 * c2 * g[4] + c1 * c2 * g[5]))


def ssim_mean(a: Image, b: Image, *, channel: int | None, weights: np.ndarray | None, offset: float,
              shave: int, h: int, w: int, quantize: bool, taps: tuple[float, ...], c1: float, c2: float) -> float:
    """Mean SSIM over the valid 11x11 windows (separable, symmetric ``taps``) of the h x w pixels after
    ``shave`` (NaN if any input is NaN): of one ``channel``, or of ``offset`` + the ``weights``-weighted sum of
    the three channels."""
    if len(taps) != SSIM_WINDOW or any(taps[k] != taps[SSIM_WINDOW - 1 - k] for k in range(SSIM_WINDOW // 2)):
        raise ValueError(f"the fused SSIM needs a symmetric {SSIM_WINDOW}-tap window, got {taps}")
    if channel is not None:
        planes, weights = 1, _ONE
        base_a = a.at(shave, shave) + channel * a.channel_step
        base_b = b.at(shave, shave) + channel * b.channel_step
    else:
        planes = 3
        base_a, base_b = a.at(shave, shave), b.at(shave, shave)
    return float(_ssim_mean(a.flat, base_a, a.channel_step, a.row_step, b.flat, base_b, b.channel_step, b.row_step,
                            planes, weights, float(offset), h, w, a.scale, b.scale, quantize, *taps[:6], c1, c2))


_ONE = np.ones(1)
