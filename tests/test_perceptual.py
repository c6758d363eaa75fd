"""The pretrained metrics LPIPS, FID and KID: offline, on random-init weight files of the exact architectures.

The weight files are random (tests/weights_fixture.py), so values are meaningless as scores; what is tested is
the plumbing (files found, recorded, never downloaded), the maths (FID, KID against reference formulas) and
the orderings any sane feature extractor keeps (identical images -> 0, more distortion -> larger).
"""

from __future__ import annotations

import hashlib
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ is not a package
from zoo.metrics import MetricUnavailable  # noqa: E402
from zoo.metrics import fid as FID  # noqa: E402
from zoo.metrics import inception as INC  # noqa: E402
from zoo.metrics import lpips as LP  # noqa: E402
from zoo.metrics.build import build_metric
from zoo.metrics.pretrained import downloads_refused  # noqa: E402
from zoo.store import weights as W  # noqa: E402

from helpers import smooth_images  # noqa: E402
from weights_fixture import make_test_weights  # noqa: E402  (its fixtures come from conftest.py)


@pytest.fixture
def hub(test_torch_home, monkeypatch, tmp_path):
    """TORCH_HOME with the random test weights (for this test); feature cache under tmp_path."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))
    return test_torch_home


@pytest.fixture
def one_thread():
    """Inception on a shared 2-core box: one intra-op thread avoids OpenMP spin-waiting under contention
    (seen: 10x slower with 2 threads when other jobs run). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def noisy(x: torch.Tensor, sigma: float, seed: int = 123) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def sha10(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------------- LPIPS
def test_lpips_zero_on_identity_grows_with_noise_and_records_weights(hub):
    x = smooth_images(4)
    m = build_metric("lpips", device="cpu", shave=4, quantize=True)  # unknown params are ignored
    assert not m.info.higher_is_better and "AlexNet" in m.info.convention and "[-1,1]" in m.info.convention
    m.update(x, x)
    r = m.compute()
    assert r.n == 4 and len(r.per_image) == 4 and max(abs(v) for v in r.per_image) < 1e-7

    values = []
    for sigma in (0.02, 0.08, 0.25):
        m.reset()
        m.update(noisy(x, sigma), x)
        values.append(m.compute().value)
    assert 0 < values[0] < values[1] < values[2], values

    lin = LP.lpips_linear_weights("alex")
    assert r.weights == {W.ALEXNET.filename: sha10(hub / "hub" / "checkpoints" / W.ALEXNET.filename),
                         "lpips/weights/v0.1/alex.pth": sha10(lin)}


def test_lpips_batched_equals_one_by_one(hub):
    x = smooth_images(3, seed=5)
    y = noisy(x, 0.1)
    m = build_metric("lpips", device="cpu")
    m.update(y, x)
    batched = m.compute().per_image
    m.reset()
    for i in range(3):
        m.update(y[i:i + 1], x[i:i + 1])
    single = m.compute().per_image
    assert np.allclose(batched, single, rtol=1e-4, atol=1e-6)


def test_lpips_vgg_selectable(hub):
    x = smooth_images(2, size=48)
    m = build_metric("lpips", device="cpu", net="vgg")
    m.update(noisy(x, 0.1), x)
    r = m.compute()
    assert r.available and r.value > 0 and "VGG16" in r.info.convention
    assert set(r.weights) == {W.VGG16.filename, "lpips/weights/v0.1/vgg.pth"}


def test_lpips_linear_layer_file_missing_is_unavailable(hub, monkeypatch, tmp_path):
    monkeypatch.setattr(LP, "lpips_linear_weights", lambda net="alex": tmp_path / "missing" / "alex.pth")
    with pytest.raises(MetricUnavailable, match="lpips linear-layer weights missing"):
        build_metric("lpips", device="cpu")


# -------------------------------------------------------------------------------- missing weights, offline
def test_missing_weights_unavailable_fast_without_network(tmp_path, monkeypatch):
    home = tmp_path / "empty_torch_home"
    home.mkdir()
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for name, params, weight in [("lpips", {}, W.ALEXNET), ("lpips", {"net": "vgg"}, W.VGG16),
                                 ("lpips_vgg", {}, W.VGG16), ("fid", {}, W.FID_INCEPTION),
                                 ("kid", {}, W.FID_INCEPTION)]:
        t0 = time.perf_counter()
        with pytest.raises(MetricUnavailable) as err:
            build_metric(name, device="cpu", **params)
        assert time.perf_counter() - t0 < 5
        msg = str(err.value)
        assert weight.filename in msg and "$TORCH_HOME/hub/checkpoints" in msg and "\n" not in msg, msg
        assert "downloads are off (ZOO_OFFLINE=1)" in msg and str(tmp_path) not in msg, msg
    with pytest.raises(MetricUnavailable):
        INC.InceptionFeatures.get("cpu")
    assert list(home.rglob("*")) == []  # nothing created, nothing downloaded
    assert not (tmp_path / "zoo_cache").exists()


def test_download_guard_refuses_and_restores(tmp_path):
    original = torch.hub.download_url_to_file
    t0 = time.perf_counter()
    with pytest.raises(MetricUnavailable, match="refusing to download"):
        with downloads_refused(W.ALEXNET):
            torch.hub.load_state_dict_from_url("https://example.invalid/never-12345678.pth",
                                               model_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 5
    assert torch.hub.download_url_to_file is original
    assert not (tmp_path / "never-12345678.pth").exists()


# ---------------------------------------------------------------------------------------------- FID, KID
def test_fid_kid_identity_monotonic_and_one_forward_per_image(hub, tmp_path, one_thread):
    ref = smooth_images(4, seed=1)
    fid = build_metric("fid", device="cpu", cache_dir=tmp_path / "cache", batch_size=4, shave=4)
    kid = build_metric("kid", device="cpu", cache_dir=tmp_path / "cache", batch_size=4, subsets=20)
    ext = fid.extractor
    assert kid.extractor is ext  # one shared Inception for both metrics
    fids, kids = [], []
    for sigma in (0.0, 0.04, 0.12, 0.35):
        pred = ref.clone() if sigma == 0 else noisy(ref, sigma)
        fid.reset()
        kid.reset()
        before = ext.images_embedded
        fid.update(pred, ref)
        kid.update(pred, ref)
        rf, rk = fid.compute(), kid.compute()
        # one forward pass per new image across FID and KID; the reference set (4 images) is embedded
        # never (sigma=0: it equals the predictions) or already cached
        assert ext.images_embedded - before == 4
        assert rf.available and rk.available and rk.std is not None
        assert rf.info.convention == "Inception pool3 2048-d (pytorch-fid), n=4" and rf.n == 4
        assert "20x4 subsets" in rk.info.convention
        assert rf.weights == rk.weights == {W.FID_INCEPTION.filename:
                                            sha10(hub / "hub" / "checkpoints" / W.FID_INCEPTION.filename)}
        fids.append(rf.value)
        kids.append(rk.value)
    assert abs(fids[0]) < 1e-3
    assert fids[0] < fids[1] < fids[2] < fids[3], fids
    assert kids[3] > kids[1] and kids[3] > 0, kids


def test_reference_features_cached_on_disk_and_invalidated_by_weights(hub, tmp_path, monkeypatch, one_thread):
    cache = tmp_path / "cache"
    ref = smooth_images(2, seed=2)
    pred = noisy(ref, 0.1)
    INC.InceptionFeatures.clear()
    m1 = build_metric("fid", device="cpu", cache_dir=cache)
    m1.update(pred, ref)
    assert m1.extractor.images_embedded == 2  # update embeds predictions only; targets wait for compute
    r1 = m1.compute()
    assert m1.extractor.images_embedded == 4 and m1.reference_from_cache is False
    files = list(cache.glob("*.npy"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    assert np.load(files[0], allow_pickle=False).shape == (2, 2048)

    INC.InceptionFeatures.clear()  # as a new process: no in-memory features left
    m2 = build_metric("fid", device="cpu", cache_dir=cache)
    assert m2.extractor is not m1.extractor
    m2.update(pred, ref)
    r2 = m2.compute()
    assert m2.extractor.images_embedded == 2  # predictions only: the reference came from the disk cache
    assert m2.reference_from_cache is True and r2.value == pytest.approx(r1.value, rel=1e-6, abs=1e-9)
    # order of the reference images does not matter
    m2.reset()
    m2.update(pred.flip(0), ref.flip(0))
    assert m2.compute().value == pytest.approx(r1.value, rel=1e-6, abs=1e-9)
    assert m2.extractor.images_embedded == 2 and m2.reference_from_cache is True
    # the public helper reads the same cache
    assert np.array_equal(_reference_features([ref], cache), np.load(files[0]))
    assert m2.extractor.images_embedded == 2

    # other weights (different fingerprint): cache miss, reference embedded again, new file
    home2 = tmp_path / "home2"
    make_test_weights(home2, seed=1, which=("fid_inception",))
    monkeypatch.setenv("TORCH_HOME", str(home2))
    m3 = build_metric("fid", device="cpu", cache_dir=cache)
    assert m3.extractor.fingerprint != m2.extractor.fingerprint
    m3.update(pred, ref)
    r3 = m3.compute()
    assert m3.extractor.images_embedded == 4 and m3.reference_from_cache is False
    assert len(list(cache.glob("*.npy"))) == 2 and r3.weights != r2.weights


def test_fid_kid_need_two_images(hub, tmp_path, one_thread):
    x = smooth_images(1, seed=3)
    for name in ("fid", "kid"):
        m = build_metric(name, device="cpu", cache_dir=tmp_path / "cache")
        m.update(x, x)
        r = m.compute()
        assert not r.available and r.value is None and "at least 2" in r.unavailable
    assert not (tmp_path / "cache").exists()


def test_frechet_distance_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((32, 32)) / 4
    x = rng.standard_normal((200, 32)) @ (np.eye(32) + mix)
    y = 1.3 * rng.standard_normal((150, 32)) @ (np.eye(32) - mix) + 0.2
    stats = [x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)]
    with _quiet():
        ref = calculate_frechet_distance(*stats)
    assert FID.frechet_distance(*stats) == pytest.approx(ref, rel=1e-6)
    assert FID.frechet_distance_from_features(x, y) == pytest.approx(ref, rel=1e-6)

    # small sets, rank-deficient covariances (n < d): the n x m route, against the d x d one and pytorch-fid
    a, b = rng.standard_normal((20, 64)), rng.standard_normal((30, 64)) + 0.1
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    small = FID.frechet_distance_from_features(a, b)
    assert small == pytest.approx(FID.frechet_distance(a.mean(0), sa, b.mean(0), sb), rel=1e-9)
    with _quiet():
        assert small == pytest.approx(calculate_frechet_distance(a.mean(0), sa, b.mean(0), sb), rel=1e-4)
    assert abs(FID.frechet_distance_from_features(a, a)) < 1e-9 * np.trace(sa)


class _quiet:
    """Silence scipy's sqrtm(disp=...) deprecation warning raised inside pytorch-fid."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def _mmd2_loops(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def test_kid_matches_loop_reference():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    y = (rng.standard_normal((6, 5)) + 0.3).astype(np.float32)
    assert FID.mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x.astype(np.float64), y.astype(np.float64)),
                                                  rel=1e-10)
    # whole sets as the only possible subsets: every subset value is the same
    mean, std, _ = FID.kernel_inception_distance(x[:6], y, subsets=5, subset_size=1000)
    assert mean == pytest.approx(_mmd2_loops(x[:6].astype(np.float64), y.astype(np.float64)), rel=1e-10)
    assert std < 1e-12
    # random subsets, following the documented sampling protocol
    mean, std, vals = FID.kernel_inception_distance(x, y, subsets=4, subset_size=4, seed=3)
    rs = np.random.default_rng(3)
    expect = []
    for _ in range(4):
        ix, iy = rs.choice(7, 4, replace=False), rs.choice(6, 4, replace=False)
        expect.append(_mmd2_loops(x[ix].astype(np.float64), y[iy].astype(np.float64)))
    assert np.allclose(vals, expect, rtol=1e-10)
    assert mean == pytest.approx(np.mean(expect)) and std == pytest.approx(np.std(expect))


def test_kid_is_unbiased_and_detects_shift():
    rng = np.random.default_rng(2)
    # many independent small-sample estimates under the null: mean ~0 (a biased V-statistic would not be)
    vals, biased = [], []
    for _ in range(300):
        x, y = rng.standard_normal((20, 16)), rng.standard_normal((20, 16))
        vals.append(FID.mmd2_unbiased(x, y))
        kxx, kyy, kxy = FID._poly_kernel(x, x), FID._poly_kernel(y, y), FID._poly_kernel(x, y)
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    vals, biased = np.array(vals), np.array(biased)
    se = vals.std() / np.sqrt(len(vals))
    assert abs(vals.mean()) < 4 * se, (vals.mean(), se)
    assert biased.mean() > 10 * biased.std() / np.sqrt(len(biased))

    x, y = rng.standard_normal((500, 64)), rng.standard_normal((500, 64))
    same_mean, same_std, _ = FID.kernel_inception_distance(x, y, subsets=30, subset_size=200, seed=0)
    assert abs(same_mean) < max(3 * same_std, 1e-3)
    shift_mean, shift_std, _ = FID.kernel_inception_distance(x, y + 0.5, subsets=30, subset_size=200, seed=0)
    assert shift_mean > 0.05 and shift_mean > 10 * shift_std


def _reference_features(images, cache_dir) -> np.ndarray:
    """Inception features (n, 2048) of a reference set through the metric's own cache (rows by image hash)."""
    u8 = [im for t in images for im in (list(INC.quantize_uint8(t)) if t.dim() == 4 else [INC.quantize_uint8(t)])]
    feats, _ = INC.reference_features_from([INC.image_hash(im) for im in u8], lambda i: u8[i],
                                           INC.InceptionFeatures.get("cpu"), cache_dir, 32)
    return feats
