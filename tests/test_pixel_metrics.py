"""PSNR / SSIM: numpy and skimage references, the metric objects, and calibration on Set5 / Set14."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.degrade import modcrop
from zoo.data.resize import downscale, upscale
from zoo.metrics import MetricResult
from zoo.metrics.build import available_metrics, build_metric
from zoo.metrics.pixel import prepare, psnr, ssim

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _numba_installed():
    import importlib.util

    return importlib.util.find_spec("numba") is not None


# Both implementations are checked against the references: numba's fused CPU kernels (what CPU tensors get
# when it is installed, as in `make setup`) and the torch path (any device). CI installs numba.
BACKENDS = ["torch", pytest.param("numba", marks=pytest.mark.skipif(
    not _numba_installed(), reason="numba is not installed (pip install 'zoo[fast]')"))]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _pair(seed=0, shape=(2, 3, 40, 48), noise=0.05):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g)
    pred = target + noise * torch.randn(shape, generator=g)  # leaves [0, 1]: exercises the clamp
    return pred, target


def _np_psnr(pred, target, space, shave, quantize):
    """Float64 numpy reference of the convention (one image, (3, H, W) arrays in [0, 1])."""
    def conv(x):
        # rounding in the input's precision (float32 here), as EDSR and BasicSR round their outputs
        x = np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.float64) if quantize else x.astype(np.float64) * 255
        if space == "y":
            x = 16 + (65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]) / 255
            x = x[None]
        if shave:
            x = x[:, shave:-shave, shave:-shave]
        return x

    mse = np.mean((conv(pred) - conv(target)) ** 2)
    return 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("space", ["y", "rgb"])
@pytest.mark.parametrize("shave", [0, 4])
@pytest.mark.parametrize("quantize", [True, False])
def test_psnr_matches_numpy_reference(space, shave, quantize, backend):
    pred, target = _pair()
    ours = psnr(pred, target, space=space, shave=shave, quantize=quantize, backend=backend)
    assert ours.shape == (2,) and ours.dtype == torch.float64
    # the fused kernel computes in float64 like the reference; the torch path sums float32 differences
    tol = 1e-9 if backend == "numba" else 1e-3
    for i in range(2):
        ref = _np_psnr(pred[i].numpy(), target[i].numpy(), space, shave, quantize)
        assert abs(ours[i].item() - ref) < tol


def test_psnr_edge_cases(backend):
    x = torch.rand(1, 3, 16, 16)
    assert torch.isinf(psnr(x, x, backend=backend)).all()
    # quantize: anything that rounds to the same 8-bit image scores the same
    assert psnr(x + 0.4 / 255, x * 0.9, backend=backend).item() == pytest.approx(
        psnr(torch.round(x * 255 + 0.4) / 255, x * 0.9, backend=backend).item())
    # one grey level everywhere in RGB = 20 log10(255) dB
    y = torch.full((1, 3, 8, 8), 100 / 255)
    assert psnr(y + 1 / 255, y, space="rgb", backend=backend).item() == pytest.approx(20 * np.log10(255), abs=1e-9)
    # a NaN anywhere (a diverged model) gives NaN, not a number computed from clamped values
    bad = x.clone()
    bad[0, 1, 3, 5] = float("nan")
    for fn in (psnr, ssim):
        for space in ("y", "rgb"):
            assert torch.isnan(fn(bad, x, space=space, backend=backend)).all()
            assert torch.isnan(fn(x, bad, space=space, backend=backend)).all()
    with pytest.raises(ValueError):
        psnr(x, x[..., :8, :8], backend=backend)
    with pytest.raises(ValueError):
        psnr(x, x, shave=8, backend=backend)
    with pytest.raises(ValueError):
        psnr(x, x, space="lab", backend=backend)
    with pytest.raises(TypeError):
        psnr((x * 255).to(torch.uint8), x, backend=backend)


def _skimage_ssim(a, b, channel_axis=None):
    from skimage.metrics import structural_similarity

    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=channel_axis,
    )


def _natural_pair():
    skdata = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skdata.astronaut()[100:260, 150:330].copy()).permute(2, 0, 1)[None].float() / 255
    g = torch.Generator().manual_seed(5)
    return (img + 0.03 * torch.randn(img.shape, generator=g)).clamp(0, 1), img


@pytest.mark.parametrize("which", ["natural", "random"])
@pytest.mark.parametrize("shave", [0, 3])
def test_ssim_matches_skimage_on_y_and_rgb(which, shave, backend):
    # skimage filters the full image (reflect padding) and averages the map without its 5-px border:
    # exactly the positions where the 11x11 window fits, i.e. our valid filtering. Both get the same
    # already-prepared 0..255 arrays (quantized, Y, shaved), so only the SSIM computation is compared.
    pred, target = _natural_pair() if which == "natural" else _pair(1, (1, 3, 37, 45))
    ya = prepare(pred, shave=shave)[0, 0].numpy()
    yb = prepare(target, shave=shave)[0, 0].numpy()
    tol = 1e-9 if backend == "numba" else 1e-4  # float64 throughout against float32 filtering
    ours = ssim(pred, target, shave=shave, backend=backend).item()
    assert abs(ours - _skimage_ssim(ya.astype(np.float64), yb.astype(np.float64))) < tol
    ra = prepare(pred, space="rgb", shave=shave)[0].permute(1, 2, 0).numpy()
    rb = prepare(target, space="rgb", shave=shave)[0].permute(1, 2, 0).numpy()
    ours_rgb = ssim(pred, target, space="rgb", shave=shave, backend=backend).item()
    assert abs(ours_rgb - _skimage_ssim(ra.astype(np.float64), rb.astype(np.float64), channel_axis=2)) < tol


def test_ssim_float32_path_agrees_with_float64_and_basics(backend):
    pred, target = _natural_pair()
    assert abs(ssim(pred, target, backend=backend).item()
               - ssim(pred, target, float64=True, backend=backend).item()) < 1e-6
    assert ssim(target, target, backend=backend).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(pred, target, backend=backend).item() < 0.99
    # bright offset: the luminance term must see the real means, not the centred ones
    assert ssim(target * 0.5 + 0.5, target * 0.5, space="rgb", backend=backend).item() < 0.7
    batch = ssim(torch.cat([pred, target]), torch.cat([target, target]), backend=backend)
    assert batch.shape == (2,) and batch[1].item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 10, 10), torch.rand(1, 3, 10, 10), backend=backend)  # smaller than the window
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), shave=5, backend=backend)


@pytest.mark.parametrize("fn", [psnr, ssim])
@pytest.mark.parametrize("space", ["y", "rgb"])
@pytest.mark.parametrize("shape", [(4, 3, 33, 47), (3, 3, 64, 64), (5, 3, 121, 90)])
def test_an_image_scores_the_same_bits_alone_and_in_any_batch(fn, space, shape, backend):
    # a batched BLAS call rounds an image's sum differently depending on its neighbours; the metric must not
    pred, target = _pair(7, shape)
    whole = fn(pred, target, space=space, shave=2, backend=backend)
    for i in range(shape[0]):
        assert fn(pred[i:i + 1], target[i:i + 1], space=space, shave=2, backend=backend).item() == whole[i].item()
    halves = torch.cat([fn(pred[:2], target[:2], space=space, shave=2, backend=backend),
                        fn(pred[2:], target[2:], space=space, shave=2, backend=backend)])
    assert torch.equal(halves, whole)


@pytest.mark.skipif(not _numba_installed(), reason="numba is not installed (pip install 'zoo[fast]')")
@pytest.mark.parametrize("space", ["y", "rgb"])
def test_fused_kernels_agree_with_the_torch_path_on_every_input_form(space):
    pred, target = _pair(11, (2, 3, 29, 38))
    grey_p, grey_t = pred[:, :1], target[:, :1]
    cases = {
        "float32": (pred, target, {}),
        "odd size, shaved": (pred[..., 1:, 3:], target[..., 1:, 3:], {"shave": 3}),
        "channels_last": (pred.to(memory_format=torch.channels_last), target, {}),
        "float64": (pred.double(), target.double(), {}),
        "float16 and float32": (pred.half(), target, {}),
        "not quantized": (pred, target, {"quantize": False}),
        "grey target": (pred, grey_t, {}),
        "grey target, gray=y": (pred, grey_t, {"gray": "y"}),
        "grey prediction": (grey_p, target, {}),
        "both grey": (grey_p, grey_t, {}),
        "3-d input": (pred[0], target[0], {}),
    }
    for name, (p, t, kw) in cases.items():
        for fn, tol in ((psnr, 1e-4), (ssim, 1e-6)):
            fused = fn(p, t, space=space, backend="numba", **kw)
            eager = fn(p, t, space=space, backend="torch", **kw)
            assert fused.shape == eager.shape and fused.dtype == torch.float64, name
            assert torch.allclose(fused, eager, atol=tol, rtol=0), (name, fn.__name__, fused, eager)


def test_backend_choice_and_a_clear_error_without_numba(monkeypatch):
    import zoo.metrics.pixel as P

    x, y = _pair(4, (1, 3, 24, 24))
    with pytest.raises(ValueError, match="backend must be one of"):
        psnr(x, y, backend="cuda")
    if _numba_installed():
        assert P.backend_for(x, y) == "numba"
    monkeypatch.setattr(P, "_numba_kernels", lambda: (None, "ImportError: No module named 'numba'"))
    assert P.backend_for(x, y) == "torch"  # auto falls back
    assert psnr(x, y).item() == psnr(x, y, backend="torch").item()
    with pytest.raises(RuntimeError, match=r"zoo\[fast\].*No module named"):
        ssim(x, y, backend="numba")


@pytest.mark.parametrize("space", ["y", "rgb"])
def test_ssim_is_the_same_in_bands_of_rows_and_in_one_piece(space, monkeypatch):
    import zoo.metrics.pixel_torch as T

    pred, target = _pair(3, (2, 3, 120, 90))
    monkeypatch.setattr(T, "SSIM_TILE_ELEMENTS", 1 << 30)
    whole = ssim(pred, target, space=space, backend="torch")
    monkeypatch.setattr(T, "SSIM_TILE_ELEMENTS", 16 * 90)  # the 16-row minimum: 7 bands, the last short
    banded = ssim(pred, target, space=space, backend="torch")
    assert torch.allclose(banded, whole, atol=1e-7, rtol=0)


def test_grey_file_targets_use_raw_grey_values(backend):
    psnr_, ssim_ = (functools.partial(f, backend=backend) for f in (psnr, ssim))
    g = torch.Generator().manual_seed(2)
    t = torch.rand(1, 1, 32, 32, generator=g)
    p = (t + 0.05 * torch.randn(t.shape, generator=g)).clamp(0, 1)
    raw = psnr_(p, t).item()
    tq, pq = torch.round(t.double() * 255), torch.round(p.double() * 255)
    # float32 luma of the difference: < 1e-6 dB
    assert raw == pytest.approx(10 * np.log10(255**2 / ((tq - pq) ** 2).mean().item()), abs=1e-6)
    # the same pixels as a 3-channel image use 16-235 Y: higher by exactly 20 log10(255 / 219)
    y = psnr_(p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)).item()
    assert y - raw == pytest.approx(20 * np.log10(255 / 219), abs=1e-6)
    assert psnr_(p, t, gray="y").item() == pytest.approx(y)
    # an RGB prediction of a grey target is compared on its full-range luma
    assert psnr_(p.expand(-1, 3, -1, -1), t).item() == pytest.approx(raw, abs=1e-6)
    assert ssim_(p, t).item() != pytest.approx(ssim_(p, t, gray="y").item(), abs=1e-5)
    # a grey image scores as its three equal channels, in either space
    for space in ("y", "rgb"):
        for fn in (psnr_, ssim_):
            assert fn(p, t, space=space, gray="y").item() == pytest.approx(
                fn(p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1), space=space).item(), abs=1e-9)


def test_metric_objects_registry_and_results():
    assert {"psnr", "ssim", "psnr_rgb", "ssim_rgb"} <= set(available_metrics())
    m = build_metric("psnr", shave=4, unknown_option=1)  # unknown options are ignored
    assert m.info.name == "psnr" and m.info.unit == "dB" and m.info.higher_is_better
    assert m.info.convention == "Y BT.601, shave=4, uint8"
    assert build_metric("ssim", gray="y").info.convention == "Y BT.601 (grey files too), shave=0, uint8"
    s = build_metric("ssim_rgb", shave=2, quantize=False)
    assert s.info.name == "ssim_rgb" and s.info.unit == "" and s.info.convention == "RGB, shave=2, float"
    pred, target = _pair(3, (3, 3, 32, 32))
    m.update(pred[:2], target[:2])
    m.update(pred[2:], target[2:])
    r = m.compute()
    assert isinstance(r, MetricResult) and r.available and r.n == 3
    expected = psnr(pred, target, shave=4)
    assert r.per_image == pytest.approx(expected.tolist())
    assert r.value == pytest.approx(expected.mean().item())
    assert r.std == pytest.approx(expected.std(unbiased=False).item())
    assert r.to_dict()["metric"] == "psnr"
    m.reset()
    empty = m.compute()
    assert not empty.available and empty.n == 0
    s.update(pred, target)
    assert s.compute().value == pytest.approx(ssim(pred, target, space="rgb", shave=2, quantize=False).mean().item())


# -- calibration against the published bicubic numbers (EDSR paper, Table "Bicubic") ------------------
PUBLISHED_PSNR = {("Set5", 2): 33.66, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
                  ("Set14", 2): 30.24, ("Set14", 3): 27.55, ("Set14", 4): 26.00}
PUBLISHED_SSIM = {("Set5", 2): 0.9299, ("Set5", 4): 0.8104, ("Set14", 2): 0.8688, ("Set14", 4): 0.7027}


def _load(path):
    from PIL import Image

    im = Image.open(path)
    grey = im.mode == "L"  # Set14 bridge.png: kept as a 1-channel target (see zoo.metrics.pixel)
    arr = np.array(im if grey else im.convert("RGB"), dtype=np.uint8)
    if grey:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def bicubic_scores():
    if not (DATA / "Set5").is_dir() or not (DATA / "Set14").is_dir():
        pytest.skip(f"Set5/Set14 HR images not found under {DATA} (shared data folder missing)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many mid-sized ops: one thread is faster on a small, busy CI machine
    try:
        return _bicubic_scores()
    finally:
        torch.set_num_threads(threads)


def _bicubic_scores():
    scores = {}
    for name in ("Set5", "Set14"):
        files = sorted((DATA / name).glob("*.png"))
        assert len(files) == {"Set5": 5, "Set14": 14}[name]
        images = [_load(f) for f in files]
        for scale in (2, 3, 4):
            p, s = [], []
            for hr in images:
                hr = modcrop(hr, scale)
                # the LR image is made from RGB (grey files replicated), the score uses the grey target
                sr = upscale(downscale(hr.expand(-1, 3, -1, -1), scale), scale)
                p.append(psnr(sr, hr, shave=scale).item())
                s.append(ssim(sr, hr, shave=scale).item())
            scores[name, scale] = (float(np.mean(p)), float(np.mean(s)))
    print("\nbicubic Y-PSNR / Y-SSIM:",
          {f"{k[0]} x{k[1]}": (round(v[0], 4), round(v[1], 5)) for k, v in scores.items()})
    return scores


@pytest.mark.parametrize("key", list(PUBLISHED_PSNR))
def test_bicubic_psnr_matches_published(bicubic_scores, key):
    assert abs(bicubic_scores[key][0] - PUBLISHED_PSNR[key]) < 0.02, bicubic_scores[key]


@pytest.mark.parametrize("key", list(PUBLISHED_SSIM))
def test_bicubic_ssim_matches_published(bicubic_scores, key):
    assert abs(bicubic_scores[key][1] - PUBLISHED_SSIM[key]) < 0.002, bicubic_scores[key]

