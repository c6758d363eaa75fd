"""pytorch-fid's Inception features for FID and KID, memoised per image and cached on disk per reference set.

FID and KID share one Inception extractor per (device, weights file), :class:`InceptionFeatures`, which
memoises features by image content, so FID and KID in the same evaluation run one forward pass per image.
The reference (target) set's features are cached on disk, keyed by the content of the images (uint8) and the
weights fingerprint, so a test set is embedded once, ever, per weights file. The cache file is written
atomically (:mod:`zoo.store.files`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.metrics.pretrained import HASH_DIGITS, downloads_refused, metric_device, read_tensors, require_file
from zoo.plugins.metric_interface import MetricUnavailable
from zoo.store.cache import cache_root
from zoo.store.files import atomic_open
from zoo.store.weights import FID_INCEPTION, file_sha256


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
    _shared: dict[tuple[str, str], InceptionFeatures] = {}

    def __init__(self, device=None, *, memo_size: int = 20000):
        path, state = read_tensors(FID_INCEPTION)
        from pytorch_fid import inception as fid_inception  # here: only FID and KID need pytorch-fid

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
            with downloads_refused(FID_INCEPTION):
                model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[self.dims]])
        except RuntimeError as exc:  # load_state_dict(strict) inside pytorch-fid: a file of another shape
            raise MetricUnavailable(f"{FID_INCEPTION.filename} does not fit pytorch-fid's Inception: "
                                    f"{' '.join(str(exc).split())[:200]}") from None
        finally:
            fid_inception.load_state_dict_from_url = original
        self.device = metric_device(device)
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
    def get(cls, device=None) -> InceptionFeatures:
        """The shared extractor for ``device`` and the weights file now in the hub cache (MetricUnavailable
        when it is missing)."""
        path = require_file(FID_INCEPTION)
        dev = metric_device(device)
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


def reference_features_from(hashes: list[str], lookup, extractor: InceptionFeatures,
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
        with atomic_open(path) as f:
            np.save(f, feats, allow_pickle=False)
    except ZooError as exc:  # a read-only or full cache costs time, never the result
        warnings.warn(f"could not cache reference features in {path.parent}: {exc}", stacklevel=3)
    return feats, False
