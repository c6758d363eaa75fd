"""zoo.data.imageio: the reading rules (modes, EXIF, errors) and the fast PNG path."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import zoo.data.imageio as IO
from zoo.data.imageio import BadImageError, read_image
from zoo.errors import ZooError

from helpers import noise, save


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
        monkeypatch.setattr(IO, "_spng", None)
    elif IO._spng is None:
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
    img = Image.fromarray(noise(2, 4))  # W=4, H=2
    img.save(tmp_path / "o.png", exif=exif)
    t = read_image(tmp_path / "o.png")
    assert t.shape == (3, 4, 2)
    expect = torch.from_numpy(np.array(img.transpose(Image.Transpose.ROTATE_270))).permute(2, 0, 1) / 255
    assert torch.equal(t, expect.float())


def test_read_errors_name_file_and_reason(tmp_path, png_decoder):
    good = tmp_path / "good.png"
    save(good, noise(64, 64))
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
    if IO._spng is None:
        pytest.skip("pyspng is not installed (pip install 'zoo[fast]'): the fast PNG path is not used here")
    calls = []
    real_load = IO._spng.load

    class Counting:
        @staticmethod
        def load(data):
            calls.append(len(data))
            return real_load(data)

    monkeypatch.setattr(IO, "_spng", Counting)
    rgb = noise(37, 53)
    plain = {
        "rgb.png": Image.fromarray(rgb),
        "l.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]]), mode="RGBA"),
    }
    for name, img in plain.items():
        img.save(tmp_path / name)
        fast = IO._decode_png_fast(tmp_path / name)
        assert fast is not None, name
        assert fast.dtype == np.uint8 and np.array_equal(fast, IO._decode(tmp_path / name, tmp_path / name)), name
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
        assert IO._decode_png_fast(tmp_path / name) is None, name
