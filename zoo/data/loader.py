"""The training loader (:func:`make_train_loader`): seeded streams of random patches from a data set.

Batches are a pure function of ``(seed, batch index)``: sample ``j`` belongs to image visit
``v = j // patches_per_image``; visit ``v`` is position ``v % N`` of epoch ``v // N``, whose image order is
a permutation drawn from ``(seed, epoch)``; the crop and flips of a visit come from
``(seed, epoch, position)``. Each visit reads one file and takes ``patches_per_image`` crops from it.
Worker ``w`` of ``n`` builds batches ``start_step + w, + n, ...`` and the DataLoader hands them out round
robin, so the stream is the same with 0, 1 or 2 workers and resuming at ``start_step`` costs nothing.

Augmentation: SR patches get a random one of the 8 flips/rotations of the square (before the
downscale, so ``lr == downscale(hr)`` holds for every sample); colorizer patches only horizontal flips,
because vertical flips and rotations would put sky and ground in the wrong place and teach wrong colour
priors.

Memory is bounded: nothing holds the data set as float arrays; each worker keeps a LRU cache of decoded
images (uint8, or uint16 for 16-bit files; for the colorizer with ``scale > 1`` the uint8 colour LR
image, which is on the 1/255 grid) with a byte budget (``cache_mb``, default 256 MB *in total*, split
between the workers; an image larger than its worker's share is not cached). Memory therefore grows
with the data set only until the budget is reached and then stays flat: with 10 or 1000 images a worker
holds at most its share of the budget plus the image being cropped and the prefetched batches
(``2 x workers`` batches).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zoo.data.datasets import ImageItem, resolve_dataset
from zoo.data.degrade import modcrop
from zoo.data.imageio import DataWarning, array_to_tensor, read_image_array
from zoo.data.resize import downscale, imresize
from zoo.errors import ZooError

__all__ = ["PatchStream", "TrainLoader", "make_train_loader"]


class _ByteLRU:
    """LRU cache of decoded arrays, bounded by total ``nbytes``."""

    def __init__(self, budget: int):
        self.budget = int(budget)
        self.data: OrderedDict[str, np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, load) -> np.ndarray:
        arr = self.data.get(key)
        if arr is not None:
            self.data.move_to_end(key)
            self.hits += 1
            return arr
        self.misses += 1
        arr = load()
        if arr.nbytes <= self.budget:
            while self.data and self.nbytes + arr.nbytes > self.budget:
                _, old = self.data.popitem(last=False)
                self.nbytes -= old.nbytes
            self.data[key] = arr
            self.nbytes += arr.nbytes
        return arr


def _seed64(seed: int) -> int:
    return int(seed) % (1 << 64)


@dataclass(frozen=True)
class _Crop:
    y: int
    x: int
    hflip: bool
    vflip: bool
    rot: bool


class PatchStream(torch.utils.data.IterableDataset):
    """The batches of :func:`make_train_loader` (already collated; use with ``batch_size=None``)."""

    def __init__(self, items: Sequence[ImageItem], *, task: str, patch_size: int, scale: int, batch_size: int,
                 seed: int, patches_per_image: int = 4, cache_bytes: int = 256 << 20, start_step: int = 0,
                 steps: int | None = None, uint8: bool = False):
        super().__init__()
        self.uint8 = bool(uint8)
        self.items = [(it.key, str(it.path), it.width, it.height) for it in items]  # light and picklable
        self.task, self.patch, self.scale = task, int(patch_size), int(scale)
        self.batch_size, self.seed = int(batch_size), _seed64(seed)
        self.ppi = int(patches_per_image)
        self.cache_bytes = int(cache_bytes)
        self.start_step, self.steps = int(start_step), steps
        self.cache: _ByteLRU | None = None
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    # deterministic plan ------------------------------------------------------------------------
    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch, 0x9E37]).permutation(len(self.items))
            self._perms[epoch] = perm
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return perm

    def _visit(self, v: int) -> tuple[int, list[_Crop]]:
        """Image index and the ``ppi`` crops of visit ``v``."""
        n = len(self.items)
        epoch, pos = divmod(v, n)
        idx = int(self._perm(epoch)[pos])
        _, _, w, h = self.items[idx]
        s, p = self.scale, self.patch
        if self.task == "sr":
            span_h, span_w, c = h - h % s, w - w % s, p * s
        else:
            span_h, span_w, c = h // s, w // s, p
        rng = np.random.default_rng([self.seed, epoch, pos, 0xC0])
        crops = []
        for _ in range(self.ppi):
            y = int(rng.integers(0, span_h - c + 1))
            x = int(rng.integers(0, span_w - c + 1))
            hf, vf, rot = (bool(b) for b in rng.random(3) < 0.5)
            if self.task != "sr":
                vf = rot = False  # colour priors need "up" to stay up: horizontal flips only
            crops.append(_Crop(y, x, hf, vf, rot))
        return idx, crops

    # pixels ------------------------------------------------------------------------------------
    def _array(self, idx: int) -> np.ndarray:
        if self.cache is None:
            self.cache = _ByteLRU(self.cache_bytes)
        _, path, _, _ = self.items[idx]
        return self.cache.get(path, lambda: read_image_array(path))

    def _lr_array(self, idx: int) -> np.ndarray:
        """The colour LR image ``downscale(modcrop(hr, s), s)`` as uint8 (it is on the 1/255 grid), cached."""
        if self.cache is None:
            self.cache = _ByteLRU(self.cache_bytes)
        _, path, _, _ = self.items[idx]

        def load() -> np.ndarray:
            arr = read_image_array(path)
            if arr.dtype == np.uint8:  # MATLAB's uint8 resize: the same values as below, minus the conversions
                pixels = arr if arr.flags.writeable else arr.copy()  # torch wants writable memory
                hr = modcrop(torch.from_numpy(pixels).permute(2, 0, 1), self.scale)
                h, w = hr.shape[-2:]
                lr = imresize(hr, scale=1.0 / self.scale, size=(h // self.scale, w // self.scale))
                return lr.permute(1, 2, 0).contiguous().numpy()
            lr = downscale(modcrop(array_to_tensor(arr), self.scale)[None], self.scale)[0]
            return torch.round(lr.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

        return self.cache.get(f"{path}@x{self.scale}", load)

    @staticmethod
    def _augment(a: np.ndarray, c: _Crop) -> np.ndarray:
        """Flip/rotate an (h, w, 3) view (numpy views: no copy, no torch thread overhead per sample)."""
        if c.hflip:
            a = a[:, ::-1]
        if c.vflip:
            a = a[::-1]
        if c.rot:
            a = a.swapaxes(0, 1)  # with the flips: all 8 symmetries of the square
        return a

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """Batch number ``k`` of the stream (a pure function of seed and k)."""
        b, ppi, s, p = self.batch_size, self.ppi, self.scale, self.patch
        samples = range(k * b, (k + 1) * b)
        c = p * s if self.task == "sr" else p
        views = []
        for v, group in itertools.groupby(samples, key=lambda j: j // ppi):
            idx, crops = self._visit(v)
            arr = self._array(idx) if self.task == "sr" or s == 1 else self._lr_array(idx)
            for j in group:
                cr = crops[j % ppi]
                views.append(self._augment(arr[cr.y:cr.y + c, cr.x:cr.x + c], cr).transpose(2, 0, 1))
        # uint8 batches when asked for and every crop is 8-bit: the training device divides by 255 itself
        as_uint8 = self.uint8 and all(v.dtype == np.uint8 for v in views)
        x = np.empty((b, 3, c, c), dtype=np.uint8 if as_uint8 else np.float32)
        for i, view in enumerate(views):
            if as_uint8:
                x[i] = view
            else:
                div = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(view.dtype, 1.0)
                np.divide(view, np.float32(div), out=x[i], dtype=np.float32)  # == read_image's values
        if as_uint8:
            pixels = torch.from_numpy(x)
            if self.task != "sr":
                return {"rgb": pixels}
            lr = downscale(pixels.float().div_(255.0), s).clamp_(0.0, 1.0)
            return {"lr": torch.round(lr * 255.0).to(torch.uint8), "hr": pixels}  # lr: on the uint8 grid
        hr = torch.from_numpy(x)
        if self.task == "sr":
            lr = downscale(hr, s).clamp_(0.0, 1.0)
            lr = torch.round(lr * 255.0).div_(255.0)  # on the uint8 grid (downscale already is; idempotent)
            return {"lr": lr.contiguous(), "hr": hr}
        return {"rgb": hr}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:  # each worker process: its share of the byte budget
            share = self.cache_bytes // max(1, nw)
            if self.cache is None or self.cache.budget != share:
                self.cache = _ByteLRU(share)
        stop = None if self.steps is None else self.start_step + int(self.steps)
        ks = itertools.count(self.start_step + wid, nw) if stop is None else range(self.start_step + wid, stop, nw)
        for k in ks:
            yield self.batch(k)


class TrainLoader:
    """Iterable of training batches (dicts); ``len()`` is ``steps`` when given. Re-iterating restarts."""

    def __init__(self, stream: PatchStream, workers: int, pin_memory: bool):
        self.stream = stream
        self.workers = workers
        self.steps = stream.steps
        kwargs = {}
        if workers > 0:
            kwargs = {"persistent_workers": True, "prefetch_factor": 2}
        self.loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                                  pin_memory=pin_memory, **kwargs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter(self.loader)

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("this loader is endless (no steps given)")
        return int(self.steps)


_WARNED_SMALL: set[tuple[str, int]] = set()


def make_train_loader(dataset, *, task: str, patch_size: int, scale: int, batch_size: int, seed: int,
                      workers: int | None = None, steps: int | None = None, start_step: int = 0,
                      patches_per_image: int = 4, cache_mb: float = 256,
                      pin_memory: bool | None = None, uint8: bool = False, skip_grey: bool = False) -> TrainLoader:
    """Endless (or ``steps``-long) stream of random training patches from ``dataset``.

    ``task='sr'``: ``{"lr": (B,3,p,p), "hr": (B,3,p*s,p*s)}``; a random crop of the modcropped HR, a random
    one of the 8 flips/rotations, ``lr = zoo.data.resize.downscale(hr, s)`` on the uint8 grid.
    ``task='colorizer'``: ``{"rgb": (B,3,p,p)}``; random crops (horizontal flips only) of the colour LR
    image ``downscale(modcrop(hr, s), s)`` (the image itself when ``s == 1``).
    ``start_step`` skips that many batches (resume). ``workers`` defaults to ``min(2, cpu count)``;
    0 reads in-process. The batches depend on ``seed`` only, never on ``workers``. ``uint8=True``: batches of
    8-bit images come as uint8 tensors (the same values times 255; a quarter of the bytes to copy to a GPU).
    ``skip_grey``: leave out files stored as greyscale (no colour to score a colorizer on, as in evaluation).
    """
    if task not in ("sr", "colorizer"):
        raise ZooError(f"unknown task '{task}' (sr, colorizer)")
    for label, v in (("patch_size", patch_size), ("scale", scale), ("batch_size", batch_size),
                     ("patches_per_image", patches_per_image)):
        if int(v) != v or int(v) < 1:
            raise ZooError(f"{label} must be a positive integer, got {v!r}")
    if steps is not None and int(steps) < 0:
        raise ZooError(f"steps must be >= 0, got {steps}")
    if int(start_step) < 0:
        raise ZooError(f"start_step must be >= 0, got {start_step}")
    dataset = resolve_dataset(dataset)
    need = int(patch_size) * int(scale)
    usable = []
    for it in dataset.items():
        if skip_grey and it.grey:
            warnings.warn(f"skipping {it.path}: a greyscale file has no colour to score a colorizer on",
                          DataWarning, stacklevel=2)
            continue
        if min(it.width, it.height) >= need:
            usable.append(it)
            continue
        mark = (str(it.path), need)
        if mark not in _WARNED_SMALL:
            _WARNED_SMALL.add(mark)
            warnings.warn(f"skipping {it.path}: {it.width}x{it.height} is smaller than the {need}x{need} "
                          f"crop of task '{task}' (patch_size {patch_size} x scale {scale})", DataWarning,
                          stacklevel=2)
    if not usable and skip_grey and all(it.grey for it in dataset.items()):
        raise ZooError(f"every image in {dataset.name} is a greyscale file: no colour to score a colorizer on")
    if not usable:
        biggest = max(dataset.items(), key=lambda it: min(it.width, it.height))
        raise ZooError(f"no image in {dataset.name} is large enough for task '{task}': need at least "
                       f"{need}x{need} pixels (patch_size {patch_size} x scale {scale}); the largest is "
                       f"{biggest.width}x{biggest.height}")
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(0, int(workers))
    if steps is not None:
        workers = min(workers, int(steps))
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    stream = PatchStream(usable, task=task, patch_size=int(patch_size), scale=int(scale),
                         batch_size=int(batch_size), seed=seed, patches_per_image=int(patches_per_image),
                         cache_bytes=int(cache_mb * (1 << 20)), start_step=int(start_step),
                         steps=None if steps is None else int(steps), uint8=uint8)
    return TrainLoader(stream, workers, bool(pin_memory))
