"""zoo.data.resize.imresize against a loop-by-loop float64 reference of MATLAB's algorithm."""

import math

import numpy as np
import pytest
import torch

from zoo.data.resize import downscale, imresize, resize_matrix, upscale


# -- reference: MATLAB imresize written out pixel by pixel -----------------------------------------------
def _cubic(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _resize_1d(line, out_len, scale):
    """One output line from one input line (1-based MATLAB coordinates, clamped indices)."""
    n = len(line)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.empty(out_len)
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = range(left, left + int(math.ceil(width)) + 2)
        if scale < 1:
            w = np.array([scale * _cubic(scale * (u - j)) for j in taps])
        else:
            w = np.array([_cubic(u - j) for j in taps])
        w /= w.sum()
        vals = np.array([line[min(max(j, 1), n) - 1] for j in taps])
        out[x - 1] = (w * vals).sum()
    return out


def _u8(v):
    return np.floor(np.clip(v, 0, 255) + 0.5)  # MATLAB uint8(): saturate, round half away from zero


def reference_imresize(img, out_h, out_w, sh, sw, quantize=False):
    """img (H, W) float64; quantize means uint8 input/output of every pass (values in 0..255)."""
    x = img.astype(np.float64)
    order = sorted([(sh, 0), (sw, 1)], key=lambda t: t[0])  # smaller scale first, ties: height first
    for s, axis in order:
        if axis == 0:
            x = np.stack([_resize_1d(x[:, j], out_h, s) for j in range(x.shape[1])], axis=1)
        else:
            x = np.stack([_resize_1d(x[i, :], out_w, s) for i in range(x.shape[0])], axis=0)
        if quantize:
            x = _u8(x)
    return x


# -- tests ---------------------------------------------------------------------------------------------
CASES = [
    # (H, W, scale or None, size or None)
    (12, 10, 0.5, None),
    (13, 11, 0.5, None),  # odd sizes: output ceil(6.5) = 7, ceil(5.5) = 6
    (12, 9, 1 / 3, None),
    (16, 12, 0.25, None),
    (9, 7, 0.7, None),
    (6, 5, 2, None),
    (5, 4, 3, None),
    (4, 5, 4, None),
    (7, 6, 1.3, None),
    (12, 10, None, (6, 20)),  # height (scale 0.5) first, then width (2)
    (10, 12, None, (20, 6)),  # width (scale 0.5) first, then height (2)
    (9, 9, None, (4, 13)),
]


def _out_size(h, w, scale, size):
    """MATLAB's output size and per-axis scales for ``imresize(x, scale)`` or ``imresize(x, [h w])``."""
    if size is None:
        return math.ceil(h * scale), math.ceil(w * scale), scale, scale
    out_h, out_w = size
    return out_h, out_w, out_h / h, out_w / w


_PATHS = {  # (_DENSE_MAX_ENTRIES, _POLYPHASE_MIN_ENTRIES) that send every pass down one path
    "dense": (1 << 62, 1 << 62),
    "taps": (0, 1 << 62),  # every shrinking pass gathers its taps; enlarging stays dense
    "polyphase": (1 << 62, 0),  # every integer factor as a polyphase filter; other factors dense
}


def _use_path(monkeypatch, path):
    import zoo.data.resize

    dense_max, polyphase_min = _PATHS[path]
    monkeypatch.setattr(zoo.data.resize, "_DENSE_MAX_ENTRIES", dense_max)
    monkeypatch.setattr(zoo.data.resize, "_POLYPHASE_MIN_ENTRIES", polyphase_min)


@pytest.fixture(params=list(_PATHS))
def resize_path(request, monkeypatch):
    """Run a test through each way of computing a pass."""
    _use_path(monkeypatch, request.param)
    return request.param


@pytest.mark.parametrize("h,w,scale,size", CASES)
def test_matches_reference_float(h, w, scale, size, resize_path):
    rng = np.random.default_rng(h * 100 + w)
    img = rng.random((h, w)) * 255
    out_h, out_w, sh, sw = _out_size(h, w, scale, size)
    ref = reference_imresize(img, out_h, out_w, sh, sw)
    x = torch.from_numpy(img)[None, None]
    ours = imresize(x, scale=scale, size=size)[0, 0].numpy()
    assert ours.shape == (out_h, out_w)
    assert np.abs(ours - ref).max() < 1e-9


@pytest.mark.parametrize("h,w,scale,size", CASES)
def test_matches_reference_uint8_rounding_after_each_pass(h, w, scale, size, resize_path):
    rng = np.random.default_rng(h * 7 + w)
    img = rng.integers(0, 256, (h, w)).astype(np.float64)
    img[0, :] = 255  # saturation at the top edge
    img[-1, :] = 0
    out_h, out_w, sh, sw = _out_size(h, w, scale, size)
    ref = reference_imresize(img, out_h, out_w, sh, sw, quantize=True)
    x = torch.from_numpy(img / 255).float()[None, None]
    ours = imresize(x, scale=scale, size=size, quantize=True)[0, 0].double().numpy() * 255
    assert np.abs(ours - np.round(ours)).max() < 1e-3  # on the 1/255 grid
    assert np.array_equal(np.round(ours), ref)


@pytest.mark.parametrize("scale", [0.5, 0.25, 1 / 3, 0.37, 2.0, 4.0, 3.0])
def test_every_path_agrees_with_the_dense_product_on_photo_sized_images(scale, monkeypatch):
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 3, 124, 183), generator=g).float() / 255
    results = {}
    for path in _PATHS:
        _use_path(monkeypatch, path)
        results[path] = (imresize(x, scale, quantize=True), imresize(x.double(), scale))
    q_dense, f_dense = results["dense"]
    for path in ("taps", "polyphase"):
        q, f = results[path]
        assert q.shape == q_dense.shape and q.is_contiguous()
        if scale in (0.5, 0.25, 2.0, 4.0):  # dyadic weights: integer sums are exact in any order
            assert torch.equal(q, q_dense), path
        else:  # another order of summation may move a value sitting on a rounding edge by one level
            assert (q - q_dense).abs().max().item() <= 1 / 255 + 1e-7, path
            assert (q != q_dense).float().mean().item() < 1e-3, path
        assert (f - f_dense).abs().max().item() < 1e-12, path


def test_polyphase_form_is_found_only_for_integer_factors():
    from zoo.data.resize import _phases

    assert _phases(183, 366, 2.0, True)[:2] == (2, 1)
    assert _phases(124, 31, 0.25, True)[:2] == (1, 4)
    assert _phases(124, 46, 0.37, True) is None
    assert _phases(100, 150, 1.5, True) is None


@pytest.mark.parametrize("h,w,scale,size", CASES + [(124, 183, 0.5, None), (124, 183, 1 / 3, None)])
def test_uint8_input_is_resized_like_matlab_uint8(h, w, scale, size, resize_path):
    g = torch.Generator().manual_seed(h * 31 + w)
    u8 = torch.randint(0, 256, (2, 3, h, w), generator=g, dtype=torch.uint8)
    out = imresize(u8, scale=scale, size=size)
    assert out.dtype == torch.uint8
    via_float = imresize(u8.float() / 255, scale=scale, size=size, quantize=True)
    assert torch.equal(out, torch.round(via_float * 255).to(torch.uint8))
    channels_last = u8.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # a decoded (H, W, 3) array's view
    assert torch.equal(imresize(channels_last, scale=scale, size=size), out)


def test_pass_order_matters_and_is_matlabs():
    # With uint8 rounding after each pass the two orders differ; MATLAB does the smaller scale first.
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (16, 8)).astype(np.float64)
    x = torch.from_numpy(img / 255)[None, None]
    ours = np.round(imresize(x, size=(8, 16), quantize=True)[0, 0].numpy() * 255)
    first_w = _u8(np.stack([_resize_1d(img[i], 16, 2.0) for i in range(16)]))
    first_w_then_h = _u8(np.stack([_resize_1d(first_w[:, j], 8, 0.5) for j in range(16)], axis=1))
    first_h = _u8(np.stack([_resize_1d(img[:, j], 8, 0.5) for j in range(8)], axis=1))
    first_h_then_w = _u8(np.stack([_resize_1d(first_h[i], 16, 2.0) for i in range(8)]))
    assert not np.array_equal(first_w_then_h, first_h_then_w)
    assert np.array_equal(ours, first_h_then_w)


def test_known_weights_for_x2_upscale():
    m = resize_matrix(8, 16, 2.0)
    assert torch.allclose(m.sum(1), torch.ones(16, dtype=torch.float64))
    # output pixel 4 (1-based) sits at input position 4 / 2 + 0.25 = 2.25: input pixels 1..4 (1-based)
    # are at distances 1.25, 0.25, 0.75, 1.75
    expected = torch.tensor([-0.0703125, 0.8671875, 0.2265625, -0.0234375], dtype=torch.float64)
    assert torch.allclose(m[3, 0:4], expected)
    # output pixel 1 sits at 0.75: taps at -1 and 0 are clamped onto pixel 1 (edge replication), so
    # pixel 1 gets cubic(1.75) + cubic(0.75) + cubic(0.25) and pixel 2 gets cubic(1.25)
    assert m[0, 0].item() == pytest.approx(-0.0234375 + 0.2265625 + 0.8671875)
    assert m[0, 1].item() == pytest.approx(-0.0703125)
    assert (m[0, 2:] == 0).all()


def test_replicate_differs_from_symmetric_only_at_the_border():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.random((1, 1, 24, 24)))
    a = imresize(x, 0.25)
    b = imresize(x, 0.25, border="symmetric")
    diff = (a - b).abs()[0, 0]
    assert diff[2:-2, 2:-2].max() < 1e-12  # interior untouched
    assert diff.max() > 1e-3


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3, 4, 0.6])
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 24, 18), 0.4)
    assert torch.allclose(imresize(x, scale), torch.full_like(imresize(x, scale), 0.4), atol=1e-6)
    q = torch.full((1, 3, 24, 18), 77 / 255)
    assert torch.equal(imresize(q, scale, quantize=True), torch.full_like(imresize(q, scale), 77 / 255))


def test_output_sizes_dtype_and_batch():
    x = torch.rand(2, 3, 13, 11)
    assert imresize(x, 0.5).shape == (2, 3, 7, 6)
    assert imresize(x, 2).shape == (2, 3, 26, 22)
    assert imresize(x, size=(5, 30)).shape == (2, 3, 5, 30)
    assert imresize(torch.rand(3, 60, 30), 1 / 3).shape == (3, 20, 10)  # no float-error extra pixel
    assert imresize(x, 0.5).dtype == torch.float32
    assert imresize(x.double(), 0.5).dtype == torch.float64
    assert imresize(x, 0.5, quantize=True).dtype == torch.float32
    # every image of the batch is resized independently
    assert torch.allclose(imresize(x, 0.5)[1], imresize(x[1:], 0.5)[0], atol=1e-6)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        downscale(x, 2)  # 13 x 11 is not a multiple of 2


def test_downscale_upscale_helpers():
    x = torch.rand(1, 3, 24, 36)
    lr = downscale(x, 3)
    assert lr.shape == (1, 3, 8, 12)
    assert torch.equal(lr, imresize(x, 1 / 3, quantize=True))
    assert torch.equal(torch.round(lr * 255) / 255, lr)
    sr = upscale(lr, 3)
    assert sr.shape == x.shape and torch.equal(sr, imresize(lr, 3, quantize=True))
    # bicubic downscale is a low-pass: the x3 round trip is closer to x than a random image
    assert (sr - x).abs().mean() < (torch.rand_like(x) - x).abs().mean()
