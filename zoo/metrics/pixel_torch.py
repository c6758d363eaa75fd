"""The eager-torch implementation of PSNR's sum of squares and of SSIM, on any device.

:mod:`zoo.metrics.pixel` states the convention, prepares both images (0..255 units, shaved, Y or RGB) and
hands them here or to the fused CPU kernels of :mod:`zoo.metrics.pixel_numba`. Each pass here is one torch
op over a whole image or band, so the same code runs on CPU, CUDA and MPS.
"""

from __future__ import annotations

import functools

import torch

from zoo.data.color import _Y_COEFFS

__all__ = ["y_difference", "aligned_rows", "sum_of_squares_f32", "gaussian_taps", "filter_valid",
           "SSIM_TILE_ELEMENTS", "ssim_mean"]


def y_difference(d: torch.Tensor) -> torch.Tensor:
    """The 16-235 luma of an RGB *difference* (0..255 units): Y's linear part, without its offset."""
    c = [k / 255.0 for k in _Y_COEFFS]
    y = torch.mul(d[:, 0:1], c[0])
    return y.add_(d[:, 1:2], alpha=c[1]).add_(d[:, 2:3], alpha=c[2])


def aligned_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, ...) float32 as (B, L) rows that each start 64-byte aligned: ``x`` itself when its images
    already do (a fresh image-sized buffer costs page faults), else a copy with each row padded by zeros
    (which add nothing to a sum of squares) to a multiple of 16 floats."""
    n, per_image = x.shape[0], x[0].numel()
    if x.is_contiguous() and x.data_ptr() % 64 == 0 and per_image % 16 == 0:
        return x.view(n, per_image)
    rows = x.new_zeros((n, -(-per_image // 16) * 16))  # 16 float32 = 64 bytes, torch's CPU alignment
    rows[:, :per_image] = x.reshape(n, per_image)
    return rows


def sum_of_squares_f32(rows: torch.Tensor) -> torch.Tensor:
    """Per-row sum of squares of the ``rows`` of :func:`aligned_rows`, each by one BLAS dot product.

    A float64 mean of the squares costs 10x more. One dot per row, not a batched matmul: BLAS picks its
    blocking and threading from the batch size and its SIMD head from the row's alignment, so a batched
    call gives an image a different rounding depending on its neighbours (5e-7 dB). Every row starts
    64-byte aligned, as a single image's would, so an image scores the same bits alone or in any batch.
    """
    return torch.stack([torch.dot(row, row) for row in rows])


@functools.lru_cache(maxsize=8)
def gaussian_taps(size: int, sigma: float) -> tuple[float, ...]:
    r = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64, device="cpu") - r
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return tuple((g / g.sum()).tolist())


def filter_valid(x: torch.Tensor, taps: tuple[float, ...], dim: int, out: torch.Tensor) -> torch.Tensor:
    """Correlation of ``x`` with ``taps`` along ``dim``, valid positions only (no padding), into ``out``.

    Shifted in-place multiply-adds: on CPU several times faster than ``conv2d`` with 11x1 kernels (no fast
    path for this shape) or banded matrix products, and the same code on any device
    (benchmark/perf/NOTES.md#ssim).
    """
    n = x.shape[dim] - len(taps) + 1
    torch.mul(x.narrow(dim, 0, n), taps[0], out=out)
    for i in range(1, len(taps)):
        out.add_(x.narrow(dim, i, n), alpha=taps[i])
    return out


# Rows are processed in bands of about this many values per statistic. The best size depends on the CPU and
# its allocator (2^16 on one host, 2^18 on another); 2^17 sits between (benchmark/perf/NOTES.md#ssim).
SSIM_TILE_ELEMENTS = 1 << 17


def ssim_mean(a: torch.Tensor, b: torch.Tensor, *, win: int = 11, sigma: float = 1.5, k1: float = 0.01,
              k2: float = 0.03, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM (B, C) float64 of two (B, C, h, w) images, Gaussian window, valid positions only.

    The local means, E[a^2 + b^2] and E[ab] are filtered with a separable Gaussian and combined into
    ``(2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))``.

    The work is done in the inputs' dtype. The mean level of the pair is subtracted first: that keeps the
    E[x^2] - mu^2 cancellation benign in float32 (the level is added back for the luminance term; any level
    would do, it needs no precision of its own). Each band's map is summed along rows in the work dtype and
    across rows in float64. In float32 the result agrees with an all-float64 computation, and with skimage,
    to about 1e-7.

    Images are processed in bands of rows of about ``SSIM_TILE_ELEMENTS`` values per statistic, and every
    band reuses the same buffers: that bounds the memory, keeps each band in cache, and spares the
    allocator (fresh buffers per band cost about a fifth of the time).
    """
    n, c, h, w = a.shape
    if h < win or w < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} (after shaving), got {h}x{w}")
    taps = gaussian_taps(win, sigma)
    level = 0.5 * (a.mean(dim=(-2, -1), keepdim=True) + b.mean(dim=(-2, -1), keepdim=True))
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ho, wo = h - win + 1, w - win + 1
    tile = min(ho, max(16, SSIM_TILE_ELEMENTS // max(1, n * c * w)))

    def buffer(*shape):
        return torch.empty(shape, dtype=a.dtype, device=a.device)

    stats_buf, cols_buf = buffer(4, n, c, tile + win - 1, w), buffer(4, n, c, tile, w)
    filtered_buf, terms_buf = buffer(4, n, c, tile, wo), buffer(2, n, c, tile, wo)
    total = torch.zeros(n, c, dtype=torch.float64, device=a.device)
    for s in range(0, ho, tile):
        rows = min(tile, ho - s)
        stats = stats_buf[:, :, :, : rows + win - 1]
        ta, tb = stats[0], stats[1]
        torch.sub(a[..., s : s + rows + win - 1, :], level, out=ta)
        torch.sub(b[..., s : s + rows + win - 1, :], level, out=tb)
        torch.mul(ta, ta, out=stats[2]).addcmul_(tb, tb)
        torch.mul(ta, tb, out=stats[3])
        cols = filter_valid(stats, taps, -2, cols_buf[:, :, :, :rows])
        mu_a, mu_b, e_sq, e_ab = filter_valid(cols, taps, -1, filtered_buf[:, :, :, :rows]).unbind(0)
        num, den = terms_buf[:, :, :, :rows].unbind(0)
        # var_a + var_b and cov are shift invariant, so the centred statistics give them directly
        var_sum = e_sq.addcmul_(mu_a, mu_a, value=-1.0).addcmul_(mu_b, mu_b, value=-1.0).add_(c2)
        cs_num = e_ab.addcmul_(mu_a, mu_b, value=-1.0).mul_(2.0).add_(c2)  # 2 cov + C2
        mu_a.add_(level)  # back to the real local means for the luminance term
        mu_b.add_(level)
        torch.mul(mu_a, mu_b, out=num).mul_(2.0).add_(c1).mul_(cs_num)
        torch.mul(mu_a, mu_a, out=den).addcmul_(mu_b, mu_b).add_(c1).mul_(var_sum)
        total += num.div_(den).sum(dim=-1).sum(dim=-1, dtype=torch.float64)
    return total / (ho * wo)
