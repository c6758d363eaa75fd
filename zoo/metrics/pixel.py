"""PSNR and SSIM with the conventions of the SR literature (EDSR / BasicSR / MATLAB evaluation code).

Registered metrics (factory ``f(name, *, shave=0, quantize=True, gray='raw', **ignored)``):

- ``psnr``, ``ssim``: on BT.601 luma Y (16-235, :func:`zoo.color.rgb_to_y`, not rounded);
- ``psnr_rgb``, ``ssim_rgb``: on the three RGB channels (SSIM averaged over channels).

Convention, applied to both prediction and target (RGB in [0, 1], (B, 3, H, W), any device):

1. ``quantize`` (default): ``round(clamp(x, 0, 1) * 255)``, i.e. the 8-bit image that would be saved
   (EDSR ``quantize``, BasicSR ``tensor2img``); otherwise ``x * 255`` as is;
2. Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B = values / 255 (for ``space='y'``);
   **grey targets** (``gray='raw'``, default): a single-channel target (B, 1, H, W) is a grey *file*;
   it and the prediction are then compared on full-range luma 0.299 R + 0.587 G + 0.114 B (for a grey
   image: its grey value; a 1-channel prediction is taken as is), not on 16-235 Y. This is what the
   published tables do: their MATLAB evaluation skips ``rgb2ycbcr`` for single-channel files (Set14
   ``bridge.png``); with 16-235 Y bridge's PSNR rises by 20 log10(255/219) = 1.32 dB and Set14's bicubic
   mean by 0.09 dB. It depends on the file, not the pixels: Set14 ``man.png`` is stored as RGB with
   R = G = B and is evaluated on 16-235 Y. So pass grey files as 1-channel targets (the prediction may
   have 3 channels). ``gray='y'`` always uses 16-235 Y;
3. ``shave`` pixels removed from every border (usually the SR scale);
4. PSNR = 10 log10(255^2 / MSE), per image, float64 (infinite for identical images: :func:`psnr` returns
   that, as skimage and BasicSR do; the registered metric caps each image at ``PSNR_CAP`` = 100 dB before
   the set mean, so one flat or identical image cannot turn the mean into infinity, and says so);
   SSIM of Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
   L = 255, computed only where the window fits (valid filtering, no padding: MATLAB ``ssim_index``,
   BasicSR ``_ssim``), mean of the SSIM map (local statistics filtered in float32 on mean-centred
   data, formula in float64; see ``_ssim_maps``). Single-channel inputs are replicated to RGB.

This SSIM equals ``skimage.metrics.structural_similarity(y, y_ref, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)``: skimage filters the whole image (reflect padding) and
then averages the map without its ``(11 - 1) // 2 = 5``-pixel border, i.e. exactly over the valid
positions, with the same normalised 11-tap Gaussian (truncate 3.5 -> radius 5).

Two implementations of the same convention (``backend=``, see :func:`backend_for`): eager torch ops, on any
device; and, for CPU tensors when numba is installed (``pip install 'zoo[fast]'``), the fused kernels of
:mod:`zoo.metrics.pixel_numba`, which read each pixel once (5-9x skimage's speed against 2.5-5.5x for the
torch path on a 2-core CPU; ``benchmark/perf``). They agree to about 1e-5 dB and 1e-6; the fused kernels
match skimage to about 1e-14.
"""

from __future__ import annotations

import functools
import math

import torch

from zoo.color import _Y_COEFFS, rgb_to_y
from zoo.constants import constant
from zoo.metrics.base import Metric, MetricInfo, MetricResult, metric_factory

__all__ = ["psnr", "ssim", "prepare", "prepare_pair", "backend_for", "PixelMetric"]

_SPACES = ("y", "rgb")
_LUMA_FULL = (0.299, 0.587, 0.114)


def _check(x: torch.Tensor, *, expand: bool = True) -> torch.Tensor:
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected RGB (B, 3, H, W) (or (B, 1, H, W) grey), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected floats in [0, 1], got {x.dtype}")
    if x.shape[1] == 1 and expand:
        x = x.expand(-1, 3, -1, -1)
    return x.detach()


def _to_units(x: torch.Tensor, quantize: bool, dtype: torch.dtype) -> torch.Tensor:
    """RGB in [0, 1] -> RGB in 0..255 units (``dtype``), rounded to integers when ``quantize``.

    Rounding happens in the input's precision (float32 for float32 input), as EDSR and BasicSR do.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if quantize:
        return x.clamp(0.0, 1.0).mul_(255.0).round_().to(dtype)
    return x.to(dtype) * 255.0


def _luma_full(rgb255: torch.Tensor) -> torch.Tensor:
    # Full-range BT.601 luma, 0.299 R + 0.587 G + 0.114 B (= (Y - 16) * 255 / 219): a grey value stays itself.
    w = constant(_LUMA_FULL, rgb255.device, rgb255.dtype).view(1, 3, 1, 1)
    return (rgb255 * w).sum(dim=1, keepdim=True)


def _shaved_size(h: int, w: int, shave: int) -> tuple[int, int]:
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    if shave and (h <= 2 * shave or w <= 2 * shave):
        raise ValueError(f"cannot shave {shave} px from a {h}x{w} image")
    return h - 2 * shave, w - 2 * shave


def _shave(x: torch.Tensor, shave: int) -> torch.Tensor:
    shave = int(shave)
    _shaved_size(*x.shape[-2:], shave)
    return x[..., shave:-shave, shave:-shave] if shave else x


def prepare(x: torch.Tensor, *, space: str = "y", shave: int = 0, quantize: bool = True,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (B, C, h, w) tensor, in 0..255 units, that PSNR and SSIM see for one image.

    Y here is always the 16-235 luma (the grey-file rule needs the target, see :func:`prepare_pair`).
    """
    if space not in _SPACES:
        raise ValueError(f"space must be one of {_SPACES}, got {space!r}")
    x = _to_units(_shave(_check(x), shave), quantize, dtype)
    return rgb_to_y(x, data_range=255.0) if space == "y" else x


def _check_pair(pred: torch.Tensor, target: torch.Tensor, space: str, gray: str) -> None:
    if space not in _SPACES:
        raise ValueError(f"space must be one of {_SPACES}, got {space!r}")
    if gray not in ("raw", "y"):
        raise ValueError(f"gray must be 'raw' or 'y', got {gray!r}")
    if pred.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in size")


def _grey_rule(target: torch.Tensor, space: str, gray: str) -> bool:
    """Whether the pair is compared on full-range luma: a grey-file target under ``gray='raw'``."""
    return space == "y" and gray == "raw" and target.dim() >= 3 and target.shape[-3] == 1


def prepare_pair(
    pred: torch.Tensor, target: torch.Tensor, *, space: str = "y", shave: int = 0, quantize: bool = True,
    gray: str = "raw", dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as compared: (B, C, h, w) in 0..255 units, ``dtype`` (see the module docstring)."""
    _check_pair(pred, target, space, gray)
    a = _to_units(_shave(_check(pred), shave), quantize, dtype)
    b = _to_units(_shave(_check(target), shave).to(a.device), quantize, dtype)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
    if space == "y":
        if _grey_rule(target, space, gray):
            a, b = _luma_full(a), _luma_full(b)
        else:
            a, b = rgb_to_y(a, data_range=255.0), rgb_to_y(b, data_range=255.0)
    return a, b


_BACKENDS = ("auto", "torch", "numba")


@functools.lru_cache(maxsize=1)
def _numba_kernels():
    """(the fused CPU kernels module, "") or (None, why it cannot be imported)."""
    try:
        from zoo.metrics import pixel_numba
    except Exception as e:  # ImportError, or a numba that refuses this NumPy
        return None, f"{type(e).__name__}: {e}"
    return pixel_numba, ""


def backend_for(pred: torch.Tensor, target: torch.Tensor, backend: str = "auto") -> str:
    """The implementation :func:`psnr` and :func:`ssim` use for this pair: ``'numba'`` (fused CPU kernels,
    chosen by ``'auto'`` for CPU tensors when numba is installed) or ``'torch'`` (any device)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    on_cpu = pred.device.type == "cpu" and target.device.type == "cpu"
    kernels, why = _numba_kernels()
    if backend == "numba":
        if kernels is None:
            raise RuntimeError(f"backend='numba' needs numba (pip install 'zoo[fast]'): {why}")
        if not on_cpu:
            raise ValueError(f"backend='numba' runs on CPU tensors, got {pred.device} and {target.device}")
        return "numba"
    return "numba" if kernels is not None and on_cpu else "torch"


def backend_on(device_type: str) -> str:
    """The backend ``'auto'`` picks for tensors on a device of this type (part of evaluation cache keys)."""
    return "numba" if device_type == "cpu" and _numba_kernels()[0] is not None else "torch"


def _fused_scores(kind: str, pred: torch.Tensor, target: torch.Tensor, *, space: str, shave: int,
                  quantize: bool, gray: str) -> torch.Tensor:
    """:func:`psnr` or :func:`ssim` by the fused kernels of :mod:`zoo.metrics.pixel_numba`, image by image.

    The same checks and errors as the torch path. A grey (1-channel) image is not expanded: its one plane
    stands for the three equal channels.
    """
    import numpy as np

    kernels, _ = _numba_kernels()
    _check_pair(pred, target, space, gray)
    a, b = _check(pred, expand=False), _check(target, expand=False)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
    shave = int(shave)
    h, w = _shaved_size(a.shape[-2], a.shape[-1], shave)
    if kind == "ssim" and (h < kernels.SSIM_WINDOW or w < kernels.SSIM_WINDOW):
        raise ValueError(f"SSIM needs images of at least {kernels.SSIM_WINDOW}x{kernels.SSIM_WINDOW} "
                         f"(after shaving), got {h}x{w}")
    a, b = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in (a, b))
    if space == "y":
        weights, offset = _fused_luma(_grey_rule(target, space, gray))
    taps = _gaussian_taps(11, 1.5)
    scores = []
    for ia, ib in zip(kernels.images(a), kernels.images(b)):
        if kind == "psnr":
            sse = kernels.sum_squared_difference(ia, ib, shave=shave, h=h, w=w, quantize=quantize,
                                                 weights=weights if space == "y" else None)
            mse = sse / ((1 if space == "y" else 3) * h * w)
            scores.append(math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse))  # NaN stays NaN
        elif space == "y":
            scores.append(kernels.ssim_mean(ia, ib, channel=None, weights=weights, offset=offset, shave=shave,
                                            h=h, w=w, quantize=quantize, taps=taps, c1=_SSIM_C1, c2=_SSIM_C2))
        else:
            scores.append(sum(kernels.ssim_mean(ia, ib, channel=c, weights=None, offset=0.0, shave=shave, h=h,
                                                w=w, quantize=quantize, taps=taps, c1=_SSIM_C1, c2=_SSIM_C2)
                              for c in range(3)) / 3)
    return torch.from_numpy(np.array(scores, dtype=np.float64))  # torch.tensor(list) takes 3x as long


@functools.lru_cache(maxsize=2)
def _fused_luma(full_range: bool):
    """(channel weights as a float64 array, offset) of the luma the fused kernels compare."""
    import numpy as np

    if full_range:
        return np.array(_LUMA_FULL), 0.0
    return np.array([k / 255.0 for k in _Y_COEFFS]), 16.0


def _y_difference(d: torch.Tensor) -> torch.Tensor:
    """The 16-235 luma of an RGB *difference* (0..255 units): Y's linear part, without its offset."""
    c = [k / 255.0 for k in _Y_COEFFS]
    y = torch.mul(d[:, 0:1], c[0])
    return y.add_(d[:, 1:2], alpha=c[1]).add_(d[:, 2:3], alpha=c[2])


def _aligned_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, ...) float32 as (B, L) rows that each start 64-byte aligned: ``x`` itself when its images
    already do (a fresh image-sized buffer costs page faults), else a copy with each row padded by zeros
    (which add nothing to a sum of squares) to a multiple of 16 floats."""
    n, per_image = x.shape[0], x[0].numel()
    if x.is_contiguous() and x.data_ptr() % 64 == 0 and per_image % 16 == 0:
        return x.view(n, per_image)
    rows = x.new_zeros((n, -(-per_image // 16) * 16))  # 16 float32 = 64 bytes, torch's CPU alignment
    rows[:, :per_image] = x.reshape(n, per_image)
    return rows


def _sum_of_squares_f32(rows: torch.Tensor) -> torch.Tensor:
    """Per-row sum of squares of the ``rows`` of :func:`_aligned_rows`, each by one BLAS dot product.

    A float64 mean of the squares costs 10x more. One dot per row, not a batched matmul: BLAS picks its
    blocking and threading from the batch size and its SIMD head from the row's alignment, so a batched
    call gives an image a different rounding depending on its neighbours (5e-7 dB). Every row starts
    64-byte aligned, as a single image's would, so an image scores the same bits alone or in any batch.
    """
    return torch.stack([torch.dot(row, row) for row in rows])


def psnr(
    pred: torch.Tensor, target: torch.Tensor, *, space: str = "y", shave: int = 0, quantize: bool = True,
    gray: str = "raw", backend: str = "auto",
) -> torch.Tensor:
    """Per-image PSNR in dB, (B,) float64, data range 255 (see the module docstring for the convention).

    Luma is linear in RGB, so the difference is taken first and transformed once. With ``quantize`` both
    images are integers 0..255, exact in float32, and so is their difference; only the weighted sum of the
    channel differences rounds (relative 1e-7), and the squares are summed by float32 dot products.
    The result is within 1e-4 dB of an all-float64 computation (4.8e-5 dB at most from skimage on BSD100) and
    several times faster. Without ``quantize``: float64.

    ``backend`` (see :func:`backend_for`): on CPU tensors with numba installed, ``'auto'`` runs the fused
    kernel of :mod:`zoo.metrics.pixel_numba` instead (exact sums of the 8-bit differences, float64 without
    ``quantize``; it agrees with this path to about 1e-5 dB and with skimage to about 1e-12 dB).
    """
    if backend_for(pred, target, backend) == "numba":
        return _fused_scores("psnr", pred, target, space=space, shave=shave, quantize=quantize, gray=gray)
    if space not in _SPACES:
        raise ValueError(f"space must be one of {_SPACES}, got {space!r}")
    dt = torch.float32 if quantize else torch.float64
    a, b = prepare_pair(pred, target, space="rgb", shave=shave, quantize=quantize, gray=gray, dtype=dt)
    d = a.sub_(b)  # a is a fresh tensor owned here
    if space == "y":
        d = _luma_full(d) if _grey_rule(target, space, gray) else _y_difference(d)
    if d.dtype == torch.float32:
        sq = _sum_of_squares_f32(_aligned_rows(d)).double()
    else:
        sq = d.flatten(1).square().sum(dim=1)
    mse = sq / d[0].numel()
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> inf


@functools.lru_cache(maxsize=8)
def _gaussian_taps(size: int, sigma: float) -> tuple[float, ...]:
    r = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64, device="cpu") - r
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return tuple((g / g.sum()).tolist())


def _filter_valid(x: torch.Tensor, taps: tuple[float, ...], dim: int, out: torch.Tensor) -> torch.Tensor:
    """Correlation of ``x`` with ``taps`` along ``dim``, valid positions only (no padding), into ``out``.

    Shifted in-place multiply-adds: on CPU faster than ``conv2d`` with 11x1 kernels (which has no fast
    path for this shape) and than banded matrix products (measured 3.7 ms against 17-27 ms for 4 maps of
    312x472; blocked 32-row bands were still 1.4-7x slower), and the same code on any device.
    """
    n = x.shape[dim] - len(taps) + 1
    torch.mul(x.narrow(dim, 0, n), taps[0], out=out)
    for i in range(1, len(taps)):
        out.add_(x.narrow(dim, i, n), alpha=taps[i])
    return out


# Rows are processed in bands of about this many values per statistic. The best size depends on the CPU
# (2 threads, BSD100-sized images, measured): on an Intel Xeon, 2^16 values (3 bands of a Y image) ran
# about 20% faster than one band for the whole image; on an AMD EPYC, 2^18 (one band for Y, 2 for RGB)
# ran about 20% faster than 2^16, and 2^19 or more took twice as long on RGB. 2^17 sits between the two.
# All of these are tangled with page faults: the band buffers (several MB) are handed back to the OS
# between calls and faulted in again, 100-1500 faults per call depending on the process's allocator
# state (measured), which moves a timing by up to 2x from one process to the next.
_SSIM_TILE_ELEMENTS = 1 << 17

_SSIM_C1, _SSIM_C2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2  # (K1 L)^2, (K2 L)^2 with L = 255


def _ssim_mean(a: torch.Tensor, b: torch.Tensor, *, win: int = 11, sigma: float = 1.5, k1: float = 0.01,
               k2: float = 0.03, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM (B, C) float64 of two (B, C, h, w) images, Gaussian window, valid positions only.

    The local means, E[a^2 + b^2] and E[ab] are filtered with a separable Gaussian and combined into
    ``(2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))``.

    The work is done in the inputs' dtype. The mean level of the pair is subtracted first: that keeps the
    E[x^2] - mu^2 cancellation benign in float32 (the level is added back for the luminance term; any level
    would do, it needs no precision of its own). Each band's map is summed along rows in the work dtype and
    across rows in float64. In float32 the result agrees with an all-float64 computation, and with skimage,
    to about 1e-7.

    Images are processed in bands of rows of about ``_SSIM_TILE_ELEMENTS`` values per statistic, and every
    band reuses the same buffers: that bounds the memory, keeps each band in cache, and spares the
    allocator (fresh buffers per band cost about a fifth of the time, measured).
    """
    n, c, h, w = a.shape
    if h < win or w < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} (after shaving), got {h}x{w}")
    taps = _gaussian_taps(win, sigma)
    level = 0.5 * (a.mean(dim=(-2, -1), keepdim=True) + b.mean(dim=(-2, -1), keepdim=True))
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ho, wo = h - win + 1, w - win + 1
    tile = min(ho, max(16, _SSIM_TILE_ELEMENTS // max(1, n * c * w)))

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
        cols = _filter_valid(stats, taps, -2, cols_buf[:, :, :, :rows])
        mu_a, mu_b, e_sq, e_ab = _filter_valid(cols, taps, -1, filtered_buf[:, :, :, :rows]).unbind(0)
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


def ssim(
    pred: torch.Tensor, target: torch.Tensor, *, space: str = "y", shave: int = 0, quantize: bool = True,
    gray: str = "raw", float64: bool = False, backend: str = "auto",
) -> torch.Tensor:
    """Per-image SSIM, (B,) float64: mean SSIM map, averaged over channels for ``space='rgb'``.

    ``float64=True`` computes in float64 throughout (slower; the default float32 path on mean-centred
    data agrees with it to about 1e-7). ``backend`` as for :func:`psnr`: the fused CPU kernel computes in
    float64 whatever ``float64`` says, and agrees with skimage to about 1e-14.
    """
    if backend_for(pred, target, backend) == "numba":
        return _fused_scores("ssim", pred, target, space=space, shave=shave, quantize=quantize, gray=gray)
    dt = torch.float64 if float64 else torch.float32
    a, b = prepare_pair(pred, target, space=space, shave=shave, quantize=quantize, gray=gray, dtype=dt)
    return _ssim_mean(a, b).mean(dim=1)


class PixelMetric(Metric):
    """A PSNR or SSIM metric that keeps the value of every image it has seen."""

    # The evaluator hands a 1-channel target for greyscale files (scored on raw grey values).
    accepts_grey_target = True

    def __init__(self, name: str, kind: str, space: str, *, shave: int = 0, quantize: bool = True,
                 gray: str = "raw"):
        if kind not in ("psnr", "ssim"):
            raise ValueError(f"kind must be 'psnr' or 'ssim', got {kind!r}")
        if space not in _SPACES:
            raise ValueError(f"space must be one of {_SPACES}, got {space!r}")
        if gray not in ("raw", "y"):
            raise ValueError(f"gray must be 'raw' or 'y', got {gray!r}")
        self.kind, self.space, self.shave, self.quantize, self.gray = kind, space, int(shave), bool(quantize), gray
        self._fn = psnr if kind == "psnr" else ssim
        where = ("Y BT.601" if gray == "raw" else "Y BT.601 (grey files too)") if space == "y" else "RGB"
        convention = f"{where}, shave={self.shave}, {'uint8' if self.quantize else 'float'}"
        if kind == "psnr":
            desc = "Peak signal-to-noise ratio, data range 255, mean of per-image values"
        else:
            desc = "SSIM (Wang et al. 2004), 11x11 Gaussian sigma 1.5, valid window, mean of per-image values"
        self.info = MetricInfo(
            name=name, higher_is_better=True, unit="dB" if kind == "psnr" else "", convention=convention,
            description=desc,
        )
        self.min_size = 11 if kind == "ssim" else 1  # the SSIM window only scores where it fits
        self._values: list[float] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        vals = self._fn(pred, target, space=self.space, shave=self.shave, quantize=self.quantize, gray=self.gray)
        self._values.extend(float(v) for v in vals.cpu())

    def compute(self) -> MetricResult:
        """Mean, population standard deviation (ddof = 0), count and per-image values, in update order."""
        n = len(self._values)
        if n == 0:
            return MetricResult(info=self.info, value=None, n=0, per_image=[],
                                unavailable="no images were evaluated")
        vals = torch.tensor(self._values, dtype=torch.float64, device="cpu")
        note = None
        if self.kind == "psnr":
            capped = int((vals > PSNR_CAP).sum())  # inf for an image identical to its target
            if capped:
                vals = vals.clamp(max=PSNR_CAP)
                note = (f"{capped} of {n} images scored above {PSNR_CAP:g} dB (identical or nearly identical to "
                        f"the target; identical gives infinity) and count as {PSNR_CAP:g} dB in the mean")
        finite = torch.isfinite(vals)
        mean = float(vals.mean())  # NaN when a prediction held NaN
        std = float(vals.std(unbiased=False)) if bool(finite.all()) else math.nan
        return MetricResult(info=self.info, value=mean, std=std, n=n, per_image=vals.tolist(), note=note)

    def reset(self) -> None:
        self._values = []


# The cap of a per-image PSNR in the set mean (dB): identical images (MSE 0) have infinite PSNR. 100 dB is the
# value many SR evaluation scripts return for MSE 0. Images that are nearly identical can score above it too
# (one level off in one pixel of a megapixel image: about 128 dB on Y) and are capped alike.
PSNR_CAP = 100.0

_KINDS = {"psnr": ("psnr", "y"), "ssim": ("ssim", "y"), "psnr_rgb": ("psnr", "rgb"), "ssim_rgb": ("ssim", "rgb")}


@metric_factory(*_KINDS)
def _make_pixel_metric(
    name: str, *, shave: int = 0, quantize: bool = True, gray: str = "raw", **ignored
) -> PixelMetric:
    kind, space = _KINDS[name]
    return PixelMetric(name, kind, space, shave=shave, quantize=quantize, gray=gray)
