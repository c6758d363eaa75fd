"""zoo.data.color against skimage.color, plus round trips, gradients and the BT.601 luma."""

import functools
import warnings

import numpy as np
import pytest
import torch

skimage = pytest.importorskip("skimage")
from skimage import color as skcolor  # noqa: E402
from skimage import data as skdata  # noqa: E402

from zoo.data.color import gray_to_rgb, join_lab, lab_to_rgb, rgb_to_lab, rgb_to_y, split_lab  # noqa: E402


def _natural(name):
    img = getattr(skdata, name)()[::3, ::3]  # a third of the size keeps the test fast
    return img.astype(np.float64) / 255.0


@functools.lru_cache(maxsize=1)
def _images():
    rng = np.random.default_rng(0)
    return {
        "random": rng.random((48, 40, 3)),
        "astronaut": _natural("astronaut"),
        "chelsea": _natural("chelsea"),
    }


def to_t(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


def to_np(t):
    return t[0].permute(1, 2, 0).detach().cpu().numpy()


@pytest.mark.parametrize("name", ["random", "astronaut", "chelsea"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_matches_skimage(name, dtype):
    img = _images()[name]
    ref = skcolor.rgb2lab(img)
    ours = to_np(rgb_to_lab(to_t(img).to(dtype))).astype(np.float64)
    err = np.abs(ours - ref).max(axis=(0, 1))  # per channel L, a, b
    assert err.max() < 1e-3, f"max |Lab - skimage| per channel = {err}"


@pytest.mark.parametrize("name", ["random", "astronaut", "chelsea"])
def test_lab_to_rgb_matches_skimage_and_round_trips(name):
    img = _images()[name]
    lab = skcolor.rgb2lab(img)
    ours = to_np(lab_to_rgb(to_t(lab)))
    assert np.abs(ours - skcolor.lab2rgb(lab)).max() < 1e-3
    # round trip through our own pair, float64 and float32
    rt = to_np(lab_to_rgb(rgb_to_lab(to_t(img))))
    assert np.abs(rt - img).max() < 1e-4
    rt32 = to_np(lab_to_rgb(rgb_to_lab(to_t(img).float()))).astype(np.float64)
    assert np.abs(rt32 - img).max() < 1e-4


def test_lab_to_rgb_out_of_gamut_matches_skimage_and_clamp_false_leaves_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, (32, 32)), rng.uniform(-110, 110, (32, 32)), rng.uniform(-110, 110, (32, 32))], -1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about negative Z values it clips
        ref = skcolor.lab2rgb(lab)
    ours = lab_to_rgb(to_t(lab))
    assert np.abs(to_np(ours) - ref).max() < 1e-3
    assert ours.min() >= 0 and ours.max() <= 1
    raw = lab_to_rgb(to_t(lab), clamp=False)
    assert raw.min() < -0.05 and raw.max() > 1.05  # most random Lab points are out of gamut
    inside = ((raw >= 0) & (raw <= 1)).all(dim=1)
    assert torch.allclose(raw.permute(0, 2, 3, 1)[inside], ours.permute(0, 2, 3, 1)[inside])


def test_known_lab_values():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    lab = rgb_to_lab(rgb.T.reshape(1, 3, 1, 3))[0, :, 0].T
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-2)
    assert torch.allclose(lab[1], torch.zeros(3, dtype=torch.float64), atol=1e-6)
    # sRGB red in D65 Lab (skimage): 53.24, 80.09, 67.20
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=0.02)


def test_gradients_are_finite_at_black_negative_and_out_of_gamut():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    x[0, :, 0, 0] = 0.0  # black: cbrt and pow at 0
    x[0, 0, 1, 1] = -0.2
    x[1, :, 2, 2] = 1.0
    x.requires_grad_(True)
    rgb_to_lab(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()

    lab = torch.randn(2, 3, 6, 6, dtype=torch.float64) * 60
    lab[:, 0] = lab[:, 0].abs().clamp(max=100)
    lab[0, :, 0, 0] = torch.tensor([0.0, 0.0, 0.0])
    lab.requires_grad_(True)
    lab_to_rgb(lab, clamp=False).square().sum().backward()
    assert torch.isfinite(lab.grad).all()


def test_gradcheck():
    x = (torch.rand(1, 3, 3, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(rgb_to_lab, (x,))
    lab = torch.tensor([50.0, 20.0, -30.0], dtype=torch.float64).view(1, 3, 1, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: lab_to_rgb(t, clamp=False), (lab,))


def test_dtype_device_and_batch_shapes_are_kept():
    x = torch.rand(2, 3, 5, 7)
    assert rgb_to_lab(x).dtype == torch.float32 and rgb_to_lab(x).shape == (2, 3, 5, 7)
    assert rgb_to_lab(x.half()).dtype == torch.float16
    assert rgb_to_lab(x[0]).shape == (3, 5, 7)  # unbatched also works
    assert torch.allclose(rgb_to_lab(x)[1], rgb_to_lab(x[1:2])[0], atol=1e-4)
    with pytest.raises(ValueError):
        rgb_to_lab(torch.rand(2, 4, 5, 5))
    with pytest.raises(TypeError):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_split_join_round_trip():
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    L, ab = split_lab(x)
    assert L.shape == (3, 1, 8, 8) and ab.shape == (3, 2, 8, 8)
    assert L.min() >= 0 and L.max() <= 100
    assert torch.allclose(join_lab(L, ab), x, atol=1e-6)


def test_rgb_to_y_is_matlab_bt601():
    rgb = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.25, 0.75]], dtype=torch.float64)
    y = rgb_to_y(rgb.T.reshape(1, 3, 1, 6))[0, 0, 0]
    expected = 16 + rgb @ torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64)
    assert torch.allclose(y, expected, atol=1e-12)
    assert y[0] == pytest.approx(16.0) and y[1] == pytest.approx(235.0)
    # MATLAB rgb2ycbcr(uint8([255 0 0])) gives Y = 81 (= round(81.481)); ours is not rounded.
    assert y[2] == pytest.approx(81.481)


def test_gray_to_rgb_is_neutral_and_has_lightness_L():
    L = torch.linspace(0, 100, 201, dtype=torch.float64).view(1, 1, 1, 201)
    g = gray_to_rgb(L)
    assert g.shape == (1, 3, 1, 201)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    lab = rgb_to_lab(g)
    assert (lab[:, :1] - L).abs().max() < 1e-6
    assert lab[:, 1:].abs().max() < 0.01  # skimage's matrix rows do not sum exactly to the white point
    assert (g - join_lab(L, torch.zeros(1, 2, 1, 201, dtype=torch.float64))).abs().max() < 2e-4
