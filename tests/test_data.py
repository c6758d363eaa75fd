"""zoo.data: reading rules, folders (bad files, order, split, fingerprint), samples, training loader."""

from __future__ import annotations

import pickle
import socket
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo.data as D
from zoo.data import (
    SAMPLE_TEST,
    SAMPLE_TRAIN,
    BadImageError,
    DataWarning,
    ImageFolder,
    SampleImages,
    make_train_loader,
    read_image,
    resolve_dataset,
)
from zoo.errors import ZooError
from zoo.resize import downscale

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _rgb(t: torch.Tensor, y=0, x=0):
    return [round(float(v) * 255, 4) for v in t[:, y, x]]


# ------------------------------------------------------------------------------------------ reading
@pytest.fixture(params=["pillow", "spng"])
def png_decoder(request, monkeypatch):
    """Read PNGs through Pillow alone, then with the libspng fast path (when pyspng is installed)."""
    if request.param == "pillow":
        monkeypatch.setattr(D, "_spng", None)
    elif D._spng is None:
        pytest.skip("pyspng is not installed (pip install 'zoo[fast]'): the fast PNG path is not used here")
    return request.param


def test_read_modes(tmp_path, png_decoder):
    # L: replicated
    Image.new("L", (3, 2), 128).save(tmp_path / "l.png")
    t = read_image(tmp_path / "l.png")
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    assert torch.equal(t, torch.full((3, 2, 3), 128 / 255))

    # I;16 (16-bit grey PNG): replicated, / 65535, full precision
    a16 = np.array([[0, 30000, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    t = read_image(tmp_path / "g16.png")
    expect = torch.tensor([0, 30000, 65535], dtype=torch.float32) / 65535
    for c in range(3):
        assert torch.equal(t[c, 0], expect)
    assert t[0, 0, 1] != round(30000 / 65535 * 255) / 255  # not reduced to 8 bits

    # I (32-bit int): clipped to 0..65535, / 65535
    Image.fromarray(np.array([[40000, 70000, -5]], dtype=np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    t = read_image(tmp_path / "i.tif")
    assert torch.equal(t[1, 0], torch.tensor([40000 / 65535, 1.0, 0.0], dtype=torch.float32))

    # 16-bit RGB PNG: Pillow decodes 8 bits (high byte)
    a = np.array([[[65535, 0, 2570], [1000, 30000, 65534]]], dtype=np.uint16)
    (tmp_path / "rgb16.png").write_bytes(_png16_rgb(a))
    t = read_image(tmp_path / "rgb16.png")
    assert torch.equal(t, torch.from_numpy((a >> 8).astype(np.float32) / 255).permute(2, 0, 1))

    # RGBA: alpha dropped (not composited), even when fully transparent
    Image.new("RGBA", (2, 2), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert _rgb(read_image(tmp_path / "rgba.png")) == [10, 20, 30]
    Image.new("LA", (2, 2), (50, 0)).save(tmp_path / "la.png")
    assert _rgb(read_image(tmp_path / "la.png")) == [50, 50, 50]

    # P (with a transparent entry): palette colours
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow palette warning leaks out
        t = read_image(tmp_path / "p.png")
    assert _rgb(t, 0, 0) == [255, 0, 0] and _rgb(t, 0, 1) == [0, 128, 255]

    # CMYK -> RGB (Pillow's conversion): pure red, black
    c = Image.new("CMYK", (2, 1), (0, 255, 255, 0))
    c.putpixel((1, 0), (0, 0, 0, 255))
    c.save(tmp_path / "cmyk.tif")
    t = read_image(tmp_path / "cmyk.tif")
    assert _rgb(t, 0, 0) == [255, 0, 0] and _rgb(t, 0, 1) == [0, 0, 0]

    # 1-bit
    Image.new("1", (2, 2), 1).save(tmp_path / "one.png")
    assert torch.equal(read_image(tmp_path / "one.png"), torch.ones(3, 2, 2))


def test_read_applies_exif_orientation(tmp_path, png_decoder):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    img = Image.fromarray(_noise(2, 4))  # W=4, H=2
    img.save(tmp_path / "o.png", exif=exif)
    t = read_image(tmp_path / "o.png")
    assert t.shape == (3, 4, 2)
    expect = torch.from_numpy(np.array(img.transpose(Image.Transpose.ROTATE_270))).permute(2, 0, 1) / 255
    assert torch.equal(t, expect.float())


def test_read_errors_name_file_and_reason(tmp_path, png_decoder):
    good = tmp_path / "good.png"
    _save(good, _noise(64, 64))
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not really a picture\n")
    cases = {"trunc.png": "truncated", "text.png": "not an image", "missing.png": "not found"}
    for name, word in cases.items():
        with pytest.raises(BadImageError) as info:
            read_image(tmp_path / name)
        assert isinstance(info.value, ZooError)
        assert name in str(info.value) and word in info.value.reason


def test_fast_png_path_takes_plain_8_bit_pngs_and_leaves_the_rest_to_pillow(tmp_path, monkeypatch):
    if D._spng is None:
        pytest.skip("pyspng is not installed (pip install 'zoo[fast]'): the fast PNG path is not used here")
    calls = []
    real_load = D._spng.load

    class Counting:
        @staticmethod
        def load(data):
            calls.append(len(data))
            return real_load(data)

    monkeypatch.setattr(D, "_spng", Counting)
    rgb = _noise(37, 53)
    plain = {
        "rgb.png": Image.fromarray(rgb),
        "l.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]]), mode="RGBA"),
    }
    for name, img in plain.items():
        img.save(tmp_path / name)
        fast = D._decode_png_fast(tmp_path / name)
        assert fast is not None, name
        assert fast.dtype == np.uint8 and np.array_equal(fast, D._decode(tmp_path / name, tmp_path / name)), name
    assert len(calls) == len(plain)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "exif.png", exif=exif)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(np.full((4, 5), 30000, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg")
    data = (tmp_path / "rgb.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    for name in ("exif.png", "p.png", "la.png", "g16.png", "rgb.jpg", "trunc.png", "missing.png"):
        assert D._decode_png_fast(tmp_path / name) is None, name


# ------------------------------------------------------------------------------------------ folders
def test_folder_skips_bad_files_with_warnings(tmp_path):
    root = tmp_path / "set"
    _save(root / "a.png", _noise(40, 40))
    _save(root / "sub" / "b.jpg", _noise(40, 48))
    full = (root / "a.png").read_bytes()
    (root / "trunc.png").write_bytes(full[: len(full) // 2])
    (root / "fake.png").write_text("hello")
    _save(root / "tiny.png", _noise(8, 8))
    (root / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(DataWarning) as rec:
        folder = ImageFolder(root, min_size=16)
        assert folder.names() == ["a", "sub/b"]
    messages = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    for name, word in (("trunc.png", "truncated"), ("fake.png", "not an image"), ("tiny.png", "too small")):
        assert any(name in m and word in m for m in messages), (name, messages)
    assert not any("notes.txt" in m for m in messages)
    assert {s.key for s in folder.check()} == {"trunc.png", "fake.png", "tiny.png"}
    # items as the evaluator uses them
    item = folder.items()[1]
    assert (item.width, item.height) == (48, 40)
    assert item.load().shape == (3, 40, 48)


def test_folder_errors(tmp_path):
    with pytest.raises(ZooError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(ZooError, match="neither a directory"):
        resolve_dataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match=r"no usable image in .*empty: 0 files skipped"):
        ImageFolder(tmp_path / "empty").items()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_text("x")
    (bad / "y.jpg").write_bytes(b"")
    with pytest.warns(DataWarning), pytest.raises(ZooError, match=r"no usable image in .*bad: 2 files skipped \(x.png"):
        ImageFolder(bad).scan()


def test_folder_order_and_extensions(tmp_path):
    root = tmp_path / "imgs"
    names = ["b/z.PNG", "a.JpG", "B.jpeg", "c.bmp", "d.TIF", "e.tiff", "f.webp", "b/a.png"]
    for i, n in enumerate(names):
        _save(root / n, _noise(16, 16, i))
    _save(root / ".hidden.png", _noise(16, 16))
    _save(root / ".cache" / "g.png", _noise(16, 16))
    folder = ImageFolder(root)
    assert [it.key for it in folder] == sorted(names)
    assert folder.names() == ["B", "a", "b/a", "b/z", "c", "d", "e", "f"]
    assert [it.name for it in ImageFolder(root)] == folder.names()  # same on a fresh instance
    assert pickle.loads(pickle.dumps(folder)).names() == folder.names()
    _save(root / "c.png", _noise(16, 16))  # stem clash with c.bmp: both keep their extension
    assert ImageFolder(root).names() == ["B", "a", "b/a", "b/z", "c.bmp", "c.png", "d", "e", "f"]


def test_split_deterministic_and_stable(tmp_path):
    root = tmp_path / "s"
    for i in range(20):
        _save(root / f"img{i:02d}.png", _noise(8, 8, i))
    folder = ImageFolder(root)
    train, val = folder.split(0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(folder.paths())
    assert folder.split(0.25, seed=3) == ImageFolder(root).split(0.25, seed=3)
    assert train == sorted(train) and val == sorted(val)  # data set order kept
    # SHA-256 based, so fixed across Python runs / PYTHONHASHSEED / machines:
    assert [p.name for p in val] == ["img01.png", "img03.png", "img13.png", "img15.png", "img18.png"]
    assert any(folder.split(0.25, seed=s)[1] != val for s in range(4, 8))
    assert folder.split(0.0, seed=1)[1] == []
    assert len(folder.split(0.01, seed=1)[1]) == 1  # at least one
    with pytest.raises(ZooError):
        folder.split(1.0, seed=0)


def test_fingerprint_cached_and_content_based(tmp_path, monkeypatch):
    root = tmp_path / "f"
    _save(root / "a.png", _noise(12, 12, 1))
    _save(root / "b.png", _noise(12, 12, 2))
    fp = ImageFolder(root).fingerprint()
    calls = []
    real = D._decode
    monkeypatch.setattr(D, "_decode", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert ImageFolder(root).fingerprint() == fp and calls == []  # (size, mtime) cache: no decode
    _save(root / "b.png", _noise(12, 12, 3))  # new content
    assert ImageFolder(root).fingerprint() != fp and len(calls) == 1
    (root / "b.png").rename(root / "c.png")  # the path is part of it too
    assert len({fp, ImageFolder(root).fingerprint()}) == 2


def test_items_flag_greyscale_files(tmp_path):
    Image.new("L", (8, 8), 7).save(tmp_path / "grey.png")
    Image.fromarray(np.full((8, 8), 9000, dtype=np.uint16)).save(tmp_path / "grey16.png")
    _save(tmp_path / "rgb.png", _noise(8, 8))
    flags = {it.name: it.grey for it in ImageFolder(tmp_path)}
    assert flags == {"grey": True, "grey16": True, "rgb": False}


# ------------------------------------------------------------------------------------------ samples
def test_samples_offline_and_split(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("samples must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # everything is shipped with the installed wheels
        every = resolve_dataset("samples")
        train, test = resolve_dataset("samples:train"), resolve_dataset("samples:test")
        assert len(every) == 10
    assert SAMPLE_TEST == ("chelsea", "china", "flower")
    assert test.names() == ["chelsea", "china", "flower"]
    assert set(train.names()) == set(SAMPLE_TRAIN) == {
        "astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
        "grace_hopper"}
    assert {"motorcycle_left", "motorcycle_right"} <= set(train.names())
    assert set(every.names()) == set(train.names()) | set(test.names())
    assert every.name == "samples" and test.name == "samples:test"
    assert train.fingerprint() != test.fingerprint() and every.fingerprint() == resolve_dataset("samples").fingerprint()
    chelsea = test["chelsea"]
    assert chelsea.path.name == "chelsea.png" and "site-packages" in str(chelsea.path)
    assert chelsea.load().shape == (3, 300, 451)
    import matplotlib.cbook

    grace = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert train["grace_hopper"].path.resolve() == grace.resolve()
    with pytest.raises(ZooError):
        resolve_dataset("samples:validation")


def test_samples_missing_file_is_left_out_with_reason(monkeypatch):
    monkeypatch.setitem(D._SAMPLE_SOURCES, "ghost", ("skimage", "data/ghost_not_shipped.png"))
    with pytest.warns(DataWarning, match="ghost"):
        s = SampleImages("all")
    assert "ghost" in s.missing and "not shipped" in s.missing["ghost"]
    assert "ghost" not in s.names() and len(s) == 10


@pytest.mark.skipif(not (SHARED_DATA / "Set5").is_dir(), reason=f"{SHARED_DATA / 'Set5'} is not present")
def test_set5_folder():
    folder = resolve_dataset(str(SHARED_DATA / "Set5"))
    assert folder.names() == ["baby", "bird", "butterfly", "head", "woman"]
    assert folder.check() == []
    assert folder["woman"].load().shape == (3, 344, 228)


# ------------------------------------------------------------------------------------------- loader
@pytest.fixture
def small_set(tmp_path):
    root = tmp_path / "train"
    _save(root / "a.png", _noise(41, 43, 1))
    _save(root / "b.png", _noise(36, 50, 2))
    _save(root / "c.png", _noise(48, 40, 3))
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
    monkeypatch.setattr(D.os, "cpu_count", lambda: 8)
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
    _save(root / "big.png", _noise(40, 40))
    _save(root / "small.png", _noise(20, 30))
    with pytest.warns(DataWarning, match=r"small\.png: 30x20 is smaller than the 32x32"):
        loader = make_train_loader(ImageFolder(root), task="sr", patch_size=16, scale=2, batch_size=2, seed=0,
                                   workers=0, steps=1)
    assert [k for k, *_ in loader.stream.items] == ["big.png"]
    with pytest.warns(DataWarning), pytest.raises(ZooError, match=r"need at least 96x96 .* largest is 40x40"):
        make_train_loader(ImageFolder(root), task="colorizer", patch_size=24, scale=4, batch_size=2, seed=0)


def test_loader_memory_is_bounded(tmp_path):
    root = tmp_path / "many"
    for i in range(10):
        _save(root / f"{i}.png", _noise(32, 32, i))  # 3072 bytes decoded each
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
