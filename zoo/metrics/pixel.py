"""PSNR and SSIM with the conventions of the SR literature (EDSR / BasicSR / MATLAB evaluation code).

Registered metrics (factory ``f(name, *, shave=0, quantize=True, gray='raw', **ignored)``):

- ``psnr``, ``ssim``: on BT.601 luma Y (16-235, :func:`zoo.data.color.rgb_to_y`, not rounded);
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
   data, formula in float64; see :func:`zoo.metrics.pixel_torch.ssim_mean`). Single-channel inputs are
   replicated to RGB.

This SSIM equals ``skimage.metrics.structural_similarity(y, y_ref, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)``: skimage filters the whole image (reflect padding) and
then averages the map without its ``(11 - 1) // 2 = 5``-pixel border, i.e. exactly over the valid
positions, with the same normalised 11-tap Gaussian (truncate 3.5 -> radius 5).

Two implementations of the same convention (``backend=``, see :func:`backend_for`): eager torch ops
(:mod:`zoo.metrics.pixel_torch`), on any device; and, for CPU tensors when numba is installed
(``pip install 'zoo[fast]'``), the fused kernels of :mod:`zoo.metrics.pixel_numba`, which read each pixel
once (1.5-2x the torch path's speed on the perf suite's 2-core CPU, ``benchmark/perf/RESULTS.md``). They
agree to about 1e-5 dB and 1e-6; the fused kernels match skimage to about 1e-14.
"""

from __future__ import annotations

import functools
import math

import torch

from zoo.data.color import _Y_COEFFS, rgb_to_y
from zoo.metrics.pixel_torch import aligned_rows, gaussian_taps, ssim_mean, sum_of_squares_f32, y_difference
from zoo.plugins.core_metrics import declared_info
from zoo.plugins.metric_interface import Metric, MetricResult, metric_factory
from zoo.runtime.constants import constant

# Function-level imports: numba is optional (zoo[fast]): its kernels are imported where first used, with a fallback.

__all__ = ["psnr", "ssim", "prepare", "prepare_pair", "backend_for", "PixelMetric"]

_SPACES = ("y", "rgb")
_LUMA_FULL = (0.299, 0.587, 0.114)
_SSIM_C1, _SSIM_C2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2  # (K1 L)^2, (K2 L)^2 with L = 255


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
    taps = gaussian_taps(11, 1.5)
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
        d = _luma_full(d) if _grey_rule(target, space, gray) else y_difference(d)
    if d.dtype == torch.float32:
        sq = sum_of_squares_f32(aligned_rows(d)).double()
    else:
        sq = d.flatten(1).square().sum(dim=1)
    mse = sq / d[0].numel()
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> inf


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
    return ssim_mean(a, b).mean(dim=1)


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
        self.info = declared_info(name, convention=convention, description=desc)
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
