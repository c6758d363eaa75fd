"""Perceptual metrics: LPIPS, FID and KID (pretrained networks) and colorfulness.

Every factory first gets its weight file from the torch hub cache (``$TORCH_HOME/hub/checkpoints``, see
:mod:`zoo.weights`), which downloads a missing one, verified, unless downloads are off; a file that stays
missing or is refused raises :class:`MetricUnavailable` with one line saying why. The tensors are read with
``torch.load(weights_only=True)`` by zoo itself and handed to lpips / pytorch-fid, whose own loaders
(``torch.hub.load_state_dict_from_url``, which unpickles with ``weights_only=False``) never run: a booby-
trapped file under a standard name is refused, not executed. As a second guard, ``torch.hub``'s unverified
download is replaced by a function that refuses while those networks are built. Every result records the
files it used (``MetricResult.weights``).

FID and KID share one Inception extractor per (device, weights file), :class:`InceptionFeatures`, which
memoises features by image content, so FID and KID in the same evaluation run one forward pass per image.
The reference (target) set's features are cached on disk, keyed by the content of the images (uint8) and the
weights fingerprint, so a test set is embedded once, ever, per weights file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from zoo.device import pick_device
from zoo.metrics.base import Metric, MetricInfo, MetricResult, MetricUnavailable, metric_factory
from zoo.weights import (ALEXNET, FID_INCEPTION, VGG16, WeightFile, WeightsUnavailable, file_sha256,
                         read_state_dict, require)

HASH_DIGITS = 10  # length of the sha256 prefixes recorded in MetricResult.weights


# ----------------------------------------------------------------------------------------------- helpers
def _device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    return pick_device(device)


def _require(weight: WeightFile) -> Path:
    """The file in the hub cache (downloaded first when missing and allowed), else MetricUnavailable."""
    try:
        return require(weight)
    except WeightsUnavailable as exc:
        raise MetricUnavailable(str(exc)) from None


def _tensors(weight: WeightFile) -> tuple[Path, dict[str, torch.Tensor]]:
    """The file and its tensors, read with ``weights_only=True``; MetricUnavailable when missing or refused."""
    path = _require(weight)
    try:
        return path, read_state_dict(weight, path)
    except WeightsUnavailable as exc:
        raise MetricUnavailable(str(exc)) from None


@contextlib.contextmanager
def _downloads_refused(weight: WeightFile):
    """While building a network: make any torch.hub download (unverified, unpickled unsafely) an error."""
    import torch.hub as hub

    original = hub.download_url_to_file

    def refuse(url, dst, *args, **kwargs):
        raise MetricUnavailable(f"refusing to download {url} through torch.hub: zoo fetches "
                                f"{weight.filename} itself, verified")

    hub.download_url_to_file = refuse
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" (lpips uses the old API)
            yield
    finally:
        hub.download_url_to_file = original


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], weight: WeightFile, what: str) -> None:
    """``module.load_state_dict(state, strict=True)``, a misfit reported as MetricUnavailable."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise MetricUnavailable(f"{weight.filename} does not fit {what}: {first}") from None


# Weight files each metric needs, so that a benchmark can fetch them before its jobs start.
METRIC_WEIGHTS: dict[str, tuple[WeightFile, ...]] = {
    "lpips": (ALEXNET,), "lpips_vgg": (VGG16,), "fid": (FID_INCEPTION,), "kid": (FID_INCEPTION,)}


def weights_for_metrics(names: Iterable[str]) -> list[WeightFile]:
    """The weight files the named metrics (default parameters) need, each once, in order."""
    out: dict[str, WeightFile] = {}
    for name in names:
        for w in METRIC_WEIGHTS.get(name, ()):
            out.setdefault(w.filename, w)
    return list(out.values())


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(pred.shape)}")
    if target is not None and pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def _per_image_result(info: MetricInfo, values: list[float], weights: dict[str, str] | None = None) -> MetricResult:
    if not values:
        return MetricResult(info, None, unavailable="no images", weights=dict(weights or {}))
    arr = np.asarray(values, dtype=np.float64)
    return MetricResult(info, float(arr.mean()), std=float(arr.std()), n=len(values), per_image=list(values),
                        weights=dict(weights or {}))


# ----------------------------------------------------------------------------------------------- LPIPS
LPIPS_BACKBONES = {"alex": (ALEXNET, "AlexNet"), "vgg": (VGG16, "VGG16"), "vgg16": (VGG16, "VGG16")}
LPIPS_VERSION = "0.1"


def lpips_linear_weights(net: str = "alex") -> Path:
    """The calibrated linear-layer file that ships inside the lpips package (``lpips/weights/v0.1/alex.pth``)."""
    import lpips

    name = "vgg" if net in ("vgg", "vgg16") else net
    return Path(lpips.__file__).resolve().parent / "weights" / f"v{LPIPS_VERSION}" / f"{name}.pth"


class LPIPSMetric(Metric):
    """LPIPS (Zhang et al. 2018) with the real ``lpips`` package: inputs scaled to [-1, 1], per image."""

    def __init__(self, name: str = "lpips", *, device=None, net: str = "alex"):
        if net not in LPIPS_BACKBONES:
            raise MetricUnavailable(f"lpips: unknown net '{net}' (use one of: alex, vgg)")
        backbone, label = LPIPS_BACKBONES[net]
        backbone_path, state = _tensors(backbone)
        lin_path = lpips_linear_weights(net)
        lin_name = f"lpips/weights/v{LPIPS_VERSION}/{lin_path.name}"
        if not lin_path.is_file():
            raise MetricUnavailable(f"lpips linear-layer weights missing: {lin_name} is not in the installed "
                                    f"lpips package (reinstall it: pip install --force-reinstall lpips)")
        lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
        import lpips

        # Built empty (pnet_rand: no torchvision download; pretrained=False: no torch.load of its own), then
        # filled from the tensors read above.
        with _downloads_refused(backbone):
            model = lpips.LPIPS(net="vgg" if net == "vgg16" else net, version=LPIPS_VERSION, pretrained=False,
                                pnet_rand=True, verbose=False)
        # lpips slices torchvision's ``features``: slice k holds features[i] under the name "i".
        trunk = {}
        for key in model.net.state_dict():
            _, index, rest = key.split(".", 2)
            source = f"features.{index}.{rest}"
            if source not in state:
                raise MetricUnavailable(f"{backbone.filename} does not fit torchvision's {label}: no {source}")
            trunk[key] = state[source]
        _load_into(model.net, trunk, backbone, f"torchvision's {label}")
        lin_keys = {k for k in model.state_dict() if re.match(r"lin\d+\.", k)}  # (lins.N.* are the same tensors)
        if lin_keys != set(lin_state):
            raise MetricUnavailable(f"lpips linear-layer file {lin_name} does not match net '{net}' "
                                    f"(reinstall lpips)")
        try:
            model.load_state_dict(lin_state, strict=False)  # the trunk is in already; these are the rest
        except RuntimeError:
            raise MetricUnavailable(f"lpips linear-layer file {lin_name} does not match net '{net}' "
                                    f"(reinstall lpips)") from None
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.net = net
        self.info = MetricInfo(
            name, higher_is_better=False, unit="", convention=f"{label}, lpips v{LPIPS_VERSION}, [-1,1]",
            description="Learned Perceptual Image Patch Similarity (Zhang et al. 2018), lpips package; "
                        "distance to the ground truth, lower is better")
        self.weights = {backbone.filename: file_sha256(backbone_path)[:HASH_DIGITS],
                        lin_name: file_sha256(lin_path)[:HASH_DIGITS]}
        self.reset()

    def reset(self) -> None:
        self._values: list[float] = []

    @torch.no_grad()
    def distances(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS of a batch, (B,) float on CPU."""
        _check_pair(pred, target)
        x = pred.detach().to(self.device, torch.float32).clamp(0, 1) * 2 - 1
        y = target.detach().to(self.device, torch.float32).clamp(0, 1) * 2 - 1
        return self.model(x, y).reshape(-1).float().cpu()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self._values.extend(float(v) for v in self.distances(pred, target))

    def compute(self) -> MetricResult:
        return _per_image_result(self.info, self._values, self.weights)


@metric_factory("lpips")
def _lpips_factory(name, *, device=None, net="alex", **ignored) -> Metric:
    return LPIPSMetric(name, device=device, net=net)


@metric_factory("lpips_vgg")
def _lpips_vgg_factory(name, *, device=None, **ignored) -> Metric:
    return LPIPSMetric(name, device=device, net="vgg")


# ------------------------------------------------------------------------------------- Inception features
def quantize_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] float images -> uint8 on the CPU (as a PNG of them would hold); uint8 input passes through."""
    if images.dtype == torch.uint8:
        return images.detach().cpu().contiguous()
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().contiguous()


def image_hash(image_u8: torch.Tensor) -> str:
    """sha256 of one uint8 image (C, H, W), shape included. Names and order never enter it."""
    arr = image_u8.contiguous().numpy()
    h = hashlib.sha256(("x".join(map(str, arr.shape)) + ";").encode())
    h.update(arr.tobytes())
    return h.hexdigest()


class InceptionFeatures:
    """pytorch-fid's InceptionV3 pool3 (2048-d) features, one shared instance per (device, weights file).

    Call it on float images in [0, 1] (quantized to uint8 first, as pytorch-fid sees PNG files), or use
    :meth:`embed_uint8`. Features are memoised by image content (LRU, ``memo_size`` images), so several
    metrics fed the same images run one forward pass per image. ``images_embedded`` / ``forward_batches``
    count real forward passes.
    """

    dims = 2048
    _shared: dict[tuple[str, str], "InceptionFeatures"] = {}

    def __init__(self, device=None, *, memo_size: int = 20000):
        path, state = _tensors(FID_INCEPTION)
        from pytorch_fid import inception as fid_inception

        self.weights_sha256 = file_sha256(path)

        def verified_state(url, *args, **kwargs):
            # pytorch-fid's fid_inception_v3() asks torch.hub (weights_only=False) for this: hand it the
            # tensors zoo read safely instead. The architecture and everything else stay pytorch-fid's.
            if url != fid_inception.FID_WEIGHTS_URL:
                raise MetricUnavailable(f"pytorch-fid asked for unexpected weights {url}")
            return state

        original = fid_inception.load_state_dict_from_url
        fid_inception.load_state_dict_from_url = verified_state
        try:
            with _downloads_refused(FID_INCEPTION):
                model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[self.dims]])
        except RuntimeError as exc:  # load_state_dict(strict) inside pytorch-fid: a file of another shape
            raise MetricUnavailable(f"{FID_INCEPTION.filename} does not fit pytorch-fid's Inception: "
                                    f"{' '.join(str(exc).split())[:200]}") from None
        finally:
            fid_inception.load_state_dict_from_url = original
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        self.memo_size = memo_size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self.images_embedded = 0
        self.forward_batches = 0

    @property
    def fingerprint(self) -> str:
        """``filename@sha256[:10]`` of the weights file this extractor was built from."""
        return f"{FID_INCEPTION.filename}@{self.weights_sha256[:HASH_DIGITS]}"

    @property
    def weights(self) -> dict[str, str]:
        return {FID_INCEPTION.filename: self.weights_sha256[:HASH_DIGITS]}

    @classmethod
    def get(cls, device=None) -> "InceptionFeatures":
        """The shared extractor for ``device`` and the weights file now in the hub cache (MetricUnavailable
        when it is missing)."""
        path = _require(FID_INCEPTION)
        dev = _device(device)
        key = (str(dev), file_sha256(path))
        if key not in cls._shared:
            cls._shared[key] = cls(dev)
        return cls._shared[key]

    @classmethod
    def clear(cls) -> None:
        """Forget every shared extractor (and its memo): the next :meth:`get` builds anew."""
        cls._shared.clear()

    @torch.no_grad()
    def _forward(self, batch_u8: list[torch.Tensor]) -> np.ndarray:
        x = torch.stack(batch_u8).to(self.device, torch.float32) / 255.0
        out = self.model(x)[0]
        self.images_embedded += len(batch_u8)
        self.forward_batches += 1
        return out.reshape(out.shape[0], -1).float().cpu().numpy()

    def embed_uint8(self, images: list[torch.Tensor], hashes: list[str] | None = None,
                    batch_size: int = 32) -> np.ndarray:
        """Features (n, 2048) float32 of uint8 images (each (3, H, W); sizes may differ, pytorch-fid resizes
        to 299x299 itself), in the given order. Memoised images are not run again."""
        if hashes is None:
            hashes = [image_hash(im) for im in images]
        out = np.empty((len(images), self.dims), dtype=np.float32)
        todo: dict[tuple, list[int]] = {}  # same-size images are batched together
        first_of: dict[str, int] = {}
        dupes: list[tuple[int, int]] = []
        for i, (im, h) in enumerate(zip(images, hashes)):
            if h in self._memo:
                self._memo.move_to_end(h)
                out[i] = self._memo[h]
            elif h in first_of:
                dupes.append((i, first_of[h]))
            else:
                first_of[h] = i
                todo.setdefault(tuple(im.shape), []).append(i)
        for idx in todo.values():
            for s in range(0, len(idx), batch_size):
                chunk = idx[s:s + batch_size]
                feats = self._forward([images[i] for i in chunk])
                for i, f in zip(chunk, feats):
                    out[i] = f
                    self._remember(hashes[i], f)
        for i, j in dupes:
            out[i] = out[j]
        return out

    def _remember(self, h: str, f: np.ndarray) -> None:
        if self.memo_size <= 0:
            return
        self._memo[h] = f.copy()
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    def __call__(self, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        u8 = quantize_uint8(images)
        return self.embed_uint8(list(u8), batch_size=batch_size)


def default_cache_dir() -> Path:
    """``features`` under the zoo cache (``$ZOO_CACHE`` or ``~/.cache/zoo``)."""
    from zoo.cache import cache_root

    return cache_root() / "features"


def reference_set_key(hashes: Iterable[str]) -> str:
    """Content key of an image set: sha256 of its sorted per-image hashes (order and names do not matter)."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def reference_cache_path(set_key: str, weights_sha256: str, cache_dir: Path | str | None = None) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"inception{InceptionFeatures.dims}_{set_key[:32]}_{weights_sha256[:16]}.npy"


def _load_npy(path: Path, n: int, dims: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.shape != (n, dims) or not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        return None
    return arr


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _reference_features_from(hashes: list[str], lookup, extractor: InceptionFeatures,
                             cache_dir, batch_size: int) -> tuple[np.ndarray, bool]:
    """Features of a reference set in canonical order (sorted by image hash), from the disk cache when there.

    ``lookup(i)`` returns image i's precomputed features (np array) or its uint8 pixels (tensor); pixels are
    embedded only on a cache miss. Returns (features, came_from_cache).
    """
    order = sorted(range(len(hashes)), key=lambda i: hashes[i])
    path = reference_cache_path(reference_set_key(hashes), extractor.weights_sha256, cache_dir)
    cached = _load_npy(path, len(hashes), extractor.dims) if path.is_file() else None
    if cached is not None:
        return cached, True
    feats = np.empty((len(hashes), extractor.dims), dtype=np.float32)
    pixels: list[int] = []
    for row, i in enumerate(order):
        item = lookup(i)
        if isinstance(item, np.ndarray):
            feats[row] = item
        else:
            pixels.append(row)
    if pixels:
        feats[pixels] = extractor.embed_uint8([lookup(order[r]) for r in pixels], [hashes[order[r]] for r in pixels],
                                              batch_size=batch_size)
    try:
        _save_npy_atomic(path, feats)
    except OSError as exc:  # a read-only or full cache costs time, never the result
        warnings.warn(f"could not cache reference features in {path.parent}: {exc}", stacklevel=3)
    return feats, False


def reference_features(images: Iterable[torch.Tensor], *, device=None, cache_dir=None,
                       batch_size: int = 32) -> np.ndarray:
    """Inception features (n, 2048) of a reference set, rows sorted by image hash.

    ``images``: tensors (B, 3, H, W) or (3, H, W), float in [0, 1] or uint8. Looked up on disk first (key:
    image content + weights file); embedded and cached atomically as .npy otherwise.
    """
    u8: list[torch.Tensor] = []
    for t in images:
        t = quantize_uint8(t)
        u8.extend(list(t) if t.dim() == 4 else [t])
    hashes = [image_hash(im) for im in u8]
    feats, _ = _reference_features_from(hashes, lambda i: u8[i], InceptionFeatures.get(device), cache_dir,
                                        batch_size)
    return feats


# ----------------------------------------------------------------------------------------- FID and KID
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
        _check_pair(pred, target)
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
        ref, self.reference_from_cache = _reference_features_from(
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
        return MetricInfo(self.name, higher_is_better=False, unit="",
                          convention=f"Inception pool3 2048-d (pytorch-fid){self._sizes(n, m)}",
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
        return MetricInfo(self.name, higher_is_better=False, unit="",
                          convention=f"Inception pool3 2048-d (pytorch-fid), poly3 kernel, "
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


# ------------------------------------------------------------------------------------------- colorfulness
def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colorfulness per image, (B,) float64, on the [0, 255] scale:
    rg = R-G, yb = (R+G)/2 - B, M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(images.shape)}")
    x = images.detach().to(torch.float64).clamp(0, 1) * 255
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.var(dim=(1, 2), unbiased=False) + yb.var(dim=(1, 2), unbiased=False))
    mean = torch.sqrt(rg.mean(dim=(1, 2)) ** 2 + yb.mean(dim=(1, 2)) ** 2)
    return (std + 0.3 * mean).cpu()


class ColorfulnessMetric(Metric):
    """Colorfulness of the predictions (``colorfulness``) or of the targets (``colorfulness_gt``).

    Descriptive, not ranked (``MetricInfo.ranked=False``): a colorizer should come close to the ground truth's
    colorfulness, not maximise its own. ``higher_is_better`` is True only because the field must be set."""

    def __init__(self, name: str = "colorfulness", *, of: str = "pred"):
        self.of = of
        if of == "pred":
            desc = ("Hasler & Süsstrunk 2003 colorfulness of the predictions. Not better when higher in "
                    "itself: compare with colorfulness_gt (the ground truth's); a desaturated colorizer scores "
                    "well below it")
        else:
            desc = "Hasler & Süsstrunk 2003 colorfulness of the ground truth, the reference for colorfulness"
        self.info = MetricInfo(name, higher_is_better=True, unit="", convention="Hasler-Süsstrunk 2003, RGB 0-255",
                               description=desc, ranked=False)
        self.reset()

    def reset(self) -> None:
        self._values: list[float] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_pair(pred, target)
        self._values.extend(colorfulness(pred if self.of == "pred" else target).tolist())

    def compute(self) -> MetricResult:
        return _per_image_result(self.info, self._values)


@metric_factory("colorfulness", "colorfulness_gt")
def _colorfulness_factory(name, **ignored) -> Metric:
    return ColorfulnessMetric(name, of="target" if name.endswith("_gt") else "pred")
