"""zoo.data.datasets: folders (bad files, order, fingerprint, greyscale flags) and the built-in samples."""

from __future__ import annotations

import pickle
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo.data.datasets as DS
from zoo.data.datasets import SAMPLE_TEST, SAMPLE_TRAIN, ImageFolder, SampleImages, resolve_dataset
from zoo.data.imageio import DataWarning
from zoo.errors import ZooError

from helpers import SHARED_DATA, noise, save


# ------------------------------------------------------------------------------------------ folders
def test_folder_skips_bad_files_with_warnings(tmp_path):
    root = tmp_path / "set"
    save(root / "a.png", noise(40, 40))
    save(root / "sub" / "b.jpg", noise(40, 48))
    full = (root / "a.png").read_bytes()
    (root / "trunc.png").write_bytes(full[: len(full) // 2])
    (root / "fake.png").write_text("hello")
    save(root / "tiny.png", noise(8, 8))
    (root / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(DataWarning) as rec:
        folder = ImageFolder(root, min_size=16)
        assert folder.names() == ["a", "sub/b"]
    messages = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    for name, word in (("trunc.png", "truncated"), ("fake.png", "not an image"), ("tiny.png", "too small")):
        assert any(name in m and word in m for m in messages), (name, messages)
    assert not any("notes.txt" in m for m in messages)
    assert {s.key for s in folder.scan().skipped} == {"trunc.png", "fake.png", "tiny.png"}
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
        save(root / n, noise(16, 16, i))
    save(root / ".hidden.png", noise(16, 16))
    save(root / ".cache" / "g.png", noise(16, 16))
    folder = ImageFolder(root)
    assert [it.key for it in folder] == sorted(names)
    assert folder.names() == ["B", "a", "b/a", "b/z", "c", "d", "e", "f"]
    assert [it.name for it in ImageFolder(root)] == folder.names()  # same on a fresh instance
    assert pickle.loads(pickle.dumps(folder)).names() == folder.names()
    save(root / "c.png", noise(16, 16))  # stem clash with c.bmp: both keep their extension
    assert ImageFolder(root).names() == ["B", "a", "b/a", "b/z", "c.bmp", "c.png", "d", "e", "f"]


def test_fingerprint_cached_and_content_based(tmp_path, monkeypatch):
    root = tmp_path / "f"
    save(root / "a.png", noise(12, 12, 1))
    save(root / "b.png", noise(12, 12, 2))
    fp = ImageFolder(root).fingerprint()
    calls = []
    real = DS.decode_stored
    monkeypatch.setattr(DS, "decode_stored", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert ImageFolder(root).fingerprint() == fp and calls == []  # (size, mtime) cache: no decode
    save(root / "b.png", noise(12, 12, 3))  # new content
    assert ImageFolder(root).fingerprint() != fp and len(calls) == 1
    (root / "b.png").rename(root / "c.png")  # the path is part of it too
    assert len({fp, ImageFolder(root).fingerprint()}) == 2


def test_items_flag_greyscale_files(tmp_path):
    Image.new("L", (8, 8), 7).save(tmp_path / "grey.png")
    Image.fromarray(np.full((8, 8), 9000, dtype=np.uint16)).save(tmp_path / "grey16.png")
    save(tmp_path / "rgb.png", noise(8, 8))
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
    monkeypatch.setitem(DS._SAMPLE_SOURCES, "ghost", ("skimage", "data/ghost_not_shipped.png"))
    with pytest.warns(DataWarning, match="ghost"):
        s = SampleImages("all")
    assert "ghost" in s.missing and "not shipped" in s.missing["ghost"]
    assert "ghost" not in s.names() and len(s) == 10


@pytest.mark.skipif(not (SHARED_DATA / "Set5").is_dir(), reason=f"{SHARED_DATA / 'Set5'} is not present")
def test_set5_folder():
    folder = resolve_dataset(str(SHARED_DATA / "Set5"))
    assert folder.names() == ["baby", "bird", "butterfly", "head", "woman"]
    assert folder.scan().skipped == []
    assert folder["woman"].load().shape == (3, 344, 228)

