"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) between the predictions and the targets.

Both are set metrics on pytorch-fid's Inception features (:mod:`zoo.metrics.inception`): the predictions'
features are taken as batches come, the targets' are read from the disk cache (or embedded once) when the
result is computed. The maths are here in float64 (:func:`frechet_distance_from_features`,
:func:`kernel_inception_distance`).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.metrics.inception import InceptionFeatures, image_hash, quantize_uint8, reference_features_from
from zoo.metrics.perimage import check_pair
from zoo.plugins.core_metrics import declared_info
from zoo.plugins.metric_interface import Metric, MetricInfo, MetricResult, metric_factory


def _psd_eigvals_clean(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise (negative, or below d * eps * max) set to 0, so that
    rank-deficient covariances (n < d) do not add sqrt(noise) terms."""
    tol = max(float(w.max(initial=0.0)), 0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _trace_sqrt_cov(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrtm(sigma1 @ sigma2) for PSD matrices: eigenvalues of S1^1/2 S2 S1^1/2 (symmetric, real)."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    r = (v * np.sqrt(_psd_eigvals_clean(w))) @ v.T
    m = r @ sigma2 @ r
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_psd_eigvals_clean(ev)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1-mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), float64: the quantity pytorch-fid's
    ``calculate_frechet_distance`` computes, with the matrix square root taken through symmetric
    eigendecompositions (seconds instead of scipy.linalg.sqrtm's ~30 s at 2048-d, and exact for the
    rank-deficient covariances of small sets)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError("means / covariances differ in dimension")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_cov(s1, s2))


def frechet_distance_from_features(x: np.ndarray, y: np.ndarray) -> float:
    """FID between two feature sets (n, d) and (m, d), n, m >= 2; statistics as pytorch-fid takes them
    (mean, ``np.cov(rowvar=False)``). For small sets tr sqrtm(S1 S2) is the nuclear norm of Xc Yc^T /
    sqrt((n-1)(m-1)) (the same number, from an n x m matrix instead of d x d ones)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    (n, d), m = x.shape, y.shape[0]
    if n < 2 or m < 2 or y.shape[1] != d:
        raise ValueError(f"need two feature sets of >= 2 rows and equal width, got {x.shape} and {y.shape}")
    mu1, mu2 = x.mean(0), y.mean(0)
    xc, yc = x - mu1, y - mu2
    small, large = sorted((n, m))
    if small * large * d + small * small * large <= (n + m) * d * d + 4 * d ** 3:
        tr_sqrt = float(np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1)))
        tr1, tr2 = float((xc * xc).sum() / (n - 1)), float((yc * yc).sum() / (m - 1))
    else:
        s1, s2 = xc.T @ xc / (n - 1), yc.T @ yc / (m - 1)
        tr_sqrt, tr1, tr2 = _trace_sqrt_cov(s1, s2), float(np.trace(s1)), float(np.trace(s2))
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * tr_sqrt)


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3 (Binkowski et al. 2018), float64:
    sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(n(n-1)) - 2 sum_{i,j} k(x_i,y_j)/(mn)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.sum() / (m * n))


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float, np.ndarray]:
    """KID: mean and std (ddof=0) of :func:`mmd2_unbiased` over ``subsets`` random subsets of size
    ``min(subset_size, len(x), len(y))``. Subsets: ``rng = np.random.default_rng(seed)``, then per subset
    ``rng.choice(len(x), s, replace=False)`` and ``rng.choice(len(y), s, replace=False)``, in that order."""
    s = min(subset_size, len(x), len(y))
    if s < 2:
        raise ValueError("KID needs subsets of at least 2 images")
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets, dtype=np.float64)
    for k in range(subsets):
        ix = rng.choice(len(x), s, replace=False)
        iy = rng.choice(len(y), s, replace=False)
        vals[k] = mmd2_unbiased(x[ix], y[iy])
    return float(vals.mean()), float(vals.std()), vals


class _InceptionSetMetric(Metric):
    """Shared part of FID and KID: prediction features as they come; targets hashed as they come and kept as
    uint8 until :meth:`compute`, where the reference features are read from the disk cache (or embedded once).
    Pending target pixels beyond ``max_pending_mb`` are embedded early to bound memory."""

    def __init__(self, name: str, *, device=None, cache_dir=None, batch_size: int = 32,
                 max_pending_mb: float = 2048):
        self.extractor = InceptionFeatures.get(device)
        self.name = name
        self.cache_dir = cache_dir
        self.batch_size = int(batch_size)
        self.max_pending_bytes = int(max_pending_mb * 2 ** 20)
        self.reference_from_cache: bool | None = None  # after compute(): were the targets' features cached?
        self.reset()
        self.info = self._info(None, None)  # results carry the same info with the set sizes in the convention

    def reset(self) -> None:
        self._pred: list[np.ndarray] = []
        self._ref_hashes: list[str] = []
        self._ref_items: list = []  # uint8 (3, H, W) tensor, or its feature row once embedded early
        self._pending_bytes = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> None:
        check_pair(pred, target)
        self._pred.append(self.extractor(pred, batch_size=self.batch_size))
        if target is None:
            return
        for im in quantize_uint8(target):
            self._ref_hashes.append(image_hash(im))
            self._ref_items.append(im)
            self._pending_bytes += im.numel()
        if self._pending_bytes > self.max_pending_bytes:
            self._embed_pending()

    def _embed_pending(self) -> None:
        idx = [i for i, it in enumerate(self._ref_items) if isinstance(it, torch.Tensor)]
        feats = self.extractor.embed_uint8([self._ref_items[i] for i in idx], [self._ref_hashes[i] for i in idx],
                                           batch_size=self.batch_size)
        for i, f in zip(idx, feats):
            self._ref_items[i] = f
        self._pending_bytes = 0

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """(prediction features, reference features), float32; reference rows in canonical order."""
        pred = np.concatenate(self._pred) if self._pred else np.empty((0, self.extractor.dims), np.float32)
        if not self._ref_hashes:
            return pred, np.empty((0, self.extractor.dims), np.float32)
        ref, self.reference_from_cache = reference_features_from(
            self._ref_hashes, self._ref_items.__getitem__, self.extractor, self.cache_dir, self.batch_size)
        return pred, ref

    @property
    def counts(self) -> tuple[int, int]:
        """(predictions seen, targets seen)."""
        return sum(len(p) for p in self._pred), len(self._ref_hashes)

    def _info(self, n: int | None, m: int | None) -> MetricInfo:
        raise NotImplementedError

    def _result(self, info: MetricInfo, pred: np.ndarray, ref: np.ndarray) -> MetricResult:
        """The metric itself, from both sets' features."""
        raise NotImplementedError

    def compute(self) -> MetricResult:
        res = self._unavailable()
        if res is not None:
            return res
        pred, ref = self.features()
        return self._result(self._info(len(pred), len(ref)), pred, ref)

    def _unavailable(self) -> MetricResult | None:
        """An unavailable result (before any embedding) when either set has fewer than 2 images."""
        n, m = self.counts
        if n < 2 or m < 2:
            info = self._info(n, m)
            return MetricResult(info, None, n=n, weights=self.extractor.weights,
                                unavailable=f"{self.name} needs at least 2 predictions and 2 targets "
                                            f"(got {n} and {m})")
        return None

    @staticmethod
    def _sizes(n: int | None, m: int | None) -> str:
        if n is None:
            return ""
        return f", n={n}" if n == m else f", n={n}, ref={m}"


class FIDMetric(_InceptionSetMetric):
    """Fréchet Inception Distance (Heusel et al. 2017) with pytorch-fid's Inception, from in-memory tensors."""

    def _info(self, n: int | None, m: int | None) -> MetricInfo:
        return declared_info(self.name, convention=f"Inception pool3 2048-d (pytorch-fid){self._sizes(n, m)}",
                          description="Fréchet Inception Distance between the predictions and the targets "
                                      "(images quantized to uint8 as PNGs would be); biased for small n, "
                                      "compare only at equal n")

    def _result(self, info: MetricInfo, pred: np.ndarray, ref: np.ndarray) -> MetricResult:
        value = frechet_distance_from_features(pred, ref)
        return MetricResult(info, value, n=len(pred), weights=self.extractor.weights)


class KIDMetric(_InceptionSetMetric):
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel."""

    def __init__(self, name: str, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0, **kw):
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        super().__init__(name, **kw)

    def _info(self, n: int | None, m: int | None) -> MetricInfo:
        s = self.subset_size if n is None else min(self.subset_size, n, m)
        return declared_info(self.name, convention=f"Inception pool3 2048-d (pytorch-fid), poly3 kernel, "
                                     f"{self.subsets}x{s} subsets{self._sizes(n, m)}",
                          description="Kernel Inception Distance: unbiased MMD^2 with k(x,y)=(x.y/d+1)^3, mean "
                                      "(and std) over random subsets; ~0 for equal distributions, can be < 0")

    def _result(self, info: MetricInfo, pred: np.ndarray, ref: np.ndarray) -> MetricResult:
        mean, std, _ = kernel_inception_distance(pred, ref, subsets=self.subsets, subset_size=self.subset_size,
                                                 seed=self.seed)
        return MetricResult(info, mean, std=std, n=len(pred), weights=self.extractor.weights)


@metric_factory("fid")
def _fid_factory(name, *, device=None, cache_dir=None, batch_size=32, **ignored) -> Metric:
    return FIDMetric(name, device=device, cache_dir=cache_dir, batch_size=batch_size)


@metric_factory("kid")
def _kid_factory(name, *, device=None, cache_dir=None, batch_size=32, subsets=100, subset_size=1000, seed=0,
                 **ignored) -> Metric:
    return KIDMetric(name, device=device, cache_dir=cache_dir, batch_size=batch_size, subsets=subsets,
                     subset_size=subset_size, seed=seed)
