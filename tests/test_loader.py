"""zoo.data.loader: training patches (shapes, LR = bicubic of HR, augmentation), determinism, workers, memory."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from zoo.data.datasets import ImageFolder
from zoo.data.imageio import DataWarning
from zoo.data.loader import make_train_loader
from zoo.data.resize import downscale
from zoo.errors import ZooError

from helpers import noise, save


# ------------------------------------------------------------------------------------------- loader
@pytest.fixture
def small_set(tmp_path):
    root = tmp_path / "train"
    save(root / "a.png", noise(41, 43, 1))
    save(root / "b.png", noise(36, 50, 2))
    save(root / "c.png", noise(48, 40, 3))
    return ImageFolder(root)


def _take(loader):
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def _dihedral(t):
    out = []
    for rot in (False, True):
        x = t.transpose(-1, -2) if rot else t
        for hf in (False, True):
            for vf in (False, True):
                y = x.flip(-1) if hf else x
                out.append(y.flip(-2) if vf else y)
    return out


def _windows(image, c):
    """Every c x c window of ``image`` (3,H,W) as bytes (for fast membership tests)."""
    arr = image.numpy()
    return {arr[:, y:y + c, x:x + c].tobytes() for y in range(arr.shape[1] - c + 1)
            for x in range(arr.shape[2] - c + 1)}


def _found_in(patch, windows, *, hflip_only=False):
    """Is ``patch`` (3,c,c) a window of the image up to flips (and rotations)?"""
    cands = [patch, patch.flip(-1)] if hflip_only else _dihedral(patch)
    return any(cand.contiguous().numpy().tobytes() in windows for cand in cands)


def test_sr_loader_shapes_and_lr_is_bicubic_of_hr(small_set):
    loader = make_train_loader(small_set, task="sr", patch_size=5, scale=4, batch_size=6, seed=1, workers=0,
                               steps=3)
    assert len(loader) == 3
    batches = _take(loader)
    assert len(batches) == 3
    images = [it.load() for it in small_set]
    mod = set().union(*(_windows(img[:, : img.shape[1] // 4 * 4, : img.shape[2] // 4 * 4], 20) for img in images))
    for b in batches:
        assert b["lr"].shape == (6, 3, 5, 5) and b["hr"].shape == (6, 3, 20, 20)
        assert b["lr"].dtype == b["hr"].dtype == torch.float32
        assert torch.equal(b["lr"], downscale(b["hr"], 4))  # exactly, for every (augmented) sample
        assert torch.equal(b["lr"], torch.round(b["lr"] * 255) / 255)
        for hr in b["hr"]:
            assert _found_in(hr, mod)  # a crop of the modcropped HR


def test_colorizer_loader(small_set):
    for scale in (1, 2):
        loader = make_train_loader(small_set, task="colorizer", patch_size=8, scale=scale, batch_size=5,
                                   seed=0, workers=0, steps=2)
        lrs = set()
        for it in small_set:
            img = it.load()
            if scale > 1:
                img = downscale(img[:, : img.shape[1] // 2 * 2, : img.shape[2] // 2 * 2][None], 2)[0]
            lrs |= _windows(img, 8)
        for b in _take(loader):
            assert set(b) == {"rgb"} and b["rgb"].shape == (5, 3, 8, 8)
            for patch in b["rgb"]:
                assert _found_in(patch, lrs, hflip_only=True)


def test_loader_deterministic(small_set):
    kw = dict(task="sr", patch_size=4, scale=2, batch_size=4, seed=7, steps=5)
    a = _take(make_train_loader(small_set, workers=0, **kw))
    b = _take(make_train_loader(small_set, workers=0, **kw))
    assert all(torch.equal(x["hr"], y["hr"]) and torch.equal(x["lr"], y["lr"]) for x, y in zip(a, b))
    c = _take(make_train_loader(small_set, workers=0, **{**kw, "seed": 8}))
    assert not all(torch.equal(x["hr"], y["hr"]) for x, y in zip(a, c))
    # resume: start_step skips batches exactly
    d = _take(make_train_loader(small_set, workers=0, start_step=2, **{**kw, "steps": 3}))
    assert all(torch.equal(x["hr"], y["hr"]) for x, y in zip(a[2:], d))
    # worker processes give the very same stream
    e = _take(make_train_loader(small_set, workers=2, **kw))
    assert len(e) == 5 and all(torch.equal(x["hr"], y["hr"]) and torch.equal(x["lr"], y["lr"])
                               for x, y in zip(a, e))


def test_loader_endless_and_default_workers(small_set, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    loader = make_train_loader(small_set, task="colorizer", patch_size=8, scale=1, batch_size=2, seed=0,
                               workers=None, steps=1)
    assert loader.workers == 1  # min(2, cpus), then at most one per batch
    endless = make_train_loader(small_set, task="colorizer", patch_size=8, scale=1, batch_size=2, seed=0,
                                workers=0)
    assert endless.workers == 0
    it = iter(endless)
    assert len([next(it) for _ in range(30)]) == 30  # more batches than one epoch
    with pytest.raises(TypeError):
        len(endless)
    with pytest.raises(ZooError, match="unknown task"):
        make_train_loader(small_set, task="denoise", patch_size=8, scale=1, batch_size=2, seed=0)


def test_loader_skips_small_images(tmp_path):
    root = tmp_path / "mixed"
    save(root / "big.png", noise(40, 40))
    save(root / "small.png", noise(20, 30))
    with pytest.warns(DataWarning, match=r"small\.png: 30x20 is smaller than the 32x32"):
        loader = make_train_loader(ImageFolder(root), task="sr", patch_size=16, scale=2, batch_size=2, seed=0,
                                   workers=0, steps=1)
    assert [k for k, *_ in loader.stream.items] == ["big.png"]
    with pytest.warns(DataWarning), pytest.raises(ZooError, match=r"need at least 96x96 .* largest is 40x40"):
        make_train_loader(ImageFolder(root), task="colorizer", patch_size=24, scale=4, batch_size=2, seed=0)


def test_loader_memory_is_bounded(tmp_path):
    root = tmp_path / "many"
    for i in range(10):
        save(root / f"{i}.png", noise(32, 32, i))  # 3072 bytes decoded each
    folder = ImageFolder(root)
    budget = 7000  # room for two decoded images
    loader = make_train_loader(folder, task="sr", patch_size=4, scale=2, batch_size=4, seed=0, workers=0,
                               steps=25, patches_per_image=1, cache_mb=budget / (1 << 20))
    assert len(pickle.dumps(loader.stream)) < 4096  # the stream holds paths and sizes, no pixels
    peak = 0
    for _ in loader:
        cache = loader.stream.cache
        peak = max(peak, cache.nbytes)
        assert cache.nbytes <= budget and len(cache.data) <= 2
        assert all(a.dtype == np.uint8 for a in cache.data.values())
    assert peak > 0 and cache.misses >= 10  # every image was read, but never all held at once

    roomy = make_train_loader(folder, task="sr", patch_size=4, scale=2, batch_size=4, seed=0, workers=0,
                              steps=25, patches_per_image=1)
    for _ in roomy:
        pass
    assert len(roomy.stream.cache.data) == 10 and roomy.stream.cache.misses == 10  # under budget: decoded once
