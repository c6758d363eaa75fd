"""zoo.data.abbins: the in-gamut ab bins, soft encoding, prior, rebalancing and annealed mean."""

import math
import time

import pytest
import torch

from zoo.data.abbins import (
    ab_gamut_bins,
    annealed_mean,
    bin_prior,
    nearest_bin,
    rebalance_weights,
    soft_encode,
    soft_encode_sparse,
)
from zoo.data.color import rgb_to_lab


@pytest.fixture(scope="module")
def bins():
    return ab_gamut_bins()


def test_bin_count_is_pinned(bins):
    # 261 cells hold the ab of some 8-bit sRGB colour; 229 centres are themselves in gamut for some L.
    # Zhang et al. have 313 with an unpublished, looser rule (see zoo.data.abbins docstring).
    assert bins.shape == (261, 2)
    assert ab_gamut_bins(rule="centre").shape == (229, 2)
    assert torch.equal(bins, torch.round(bins / 10) * 10)  # centres are multiples of 10
    assert len({tuple(r) for r in bins.tolist()}) == 261
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100
    assert bins[:, 1].min() == -110 and bins[:, 1].max() == 90
    # every centre-rule bin is also a cell-rule bin
    cell = {tuple(r) for r in bins.tolist()}
    assert {tuple(r) for r in ab_gamut_bins(rule="centre").tolist()} <= cell


def test_bins_are_cached_and_returned_as_copies(bins):
    t = time.perf_counter()
    b = ab_gamut_bins()
    assert time.perf_counter() - t < 0.05
    b.add_(1000)  # must not corrupt the cache
    assert torch.equal(ab_gamut_bins(), bins)
    assert ab_gamut_bins(dtype=torch.float64).dtype == torch.float64


def test_bins_computed_under_a_meta_default_device_are_real():
    # models are built under torch.device("meta") to count parameters; the cache must still be real
    with torch.device("meta"):
        b = ab_gamut_bins(20, rule="centre")
    assert b.device.type == "cpu" and torch.isfinite(b).all() and len(b) > 10


def test_every_8bit_colour_falls_in_a_kept_cell(bins):
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (1, 3, 200, 250), generator=g).float() / 255
    # the corners of the RGB cube are the extreme chromas
    corners = torch.tensor([[r, gg, b] for r in (0, 1) for gg in (0, 1) for b in (0, 1)], dtype=torch.float32)
    rgb[0, :, 0, :8] = corners.T
    ab = rgb_to_lab(rgb.double())[:, 1:]
    idx = nearest_bin(ab, bins.double())
    centre = bins.double()[idx].permute(0, 3, 1, 2)  # (1, 2, H, W)
    # nearest kept centre is the centre of the pixel's own cell: |ab - c| <= 5 per axis
    assert (ab - centre).abs().max() <= 5.0 + 1e-9


def _dense_reference(ab, bins, k, sigma):
    b, _, h, w = ab.shape
    pts = ab.permute(0, 2, 3, 1).reshape(-1, 2).double()
    d2 = ((pts[:, None, :] - bins.double()[None]) ** 2).sum(-1)
    out = torch.zeros_like(d2)
    for n in range(pts.shape[0]):
        order = torch.argsort(d2[n])[:k]
        wts = torch.exp(-d2[n, order] / (2 * sigma**2))
        out[n, order] = wts / wts.sum()
    return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def test_soft_encode_matches_a_naive_reference(bins):
    g = torch.Generator().manual_seed(1)
    ab = torch.randn(2, 2, 5, 6, generator=g) * 40
    enc = soft_encode(ab, bins, k=5, sigma=5.0)
    assert enc.shape == (2, 261, 5, 6)
    assert torch.allclose(enc.sum(1), torch.ones(2, 5, 6), atol=1e-6)
    assert ((enc > 0).sum(1) == 5).all()
    ref = _dense_reference(ab, bins, 5, 5.0)
    assert torch.allclose(enc.double(), ref, atol=1e-6)


def test_soft_encode_on_a_bin_centre_peaks_there(bins):
    ab = bins[[0, 100, 200]].T.reshape(1, 2, 1, 3)
    enc = soft_encode(ab, bins)
    assert torch.equal(enc.argmax(1)[0, 0], torch.tensor([0, 100, 200]))
    # neighbours at distance 10 get exp(-100/50) = e^-2 of the centre's weight
    top = enc[0, :, 0, 1].sort(descending=True).values
    assert top[1] / top[0] == pytest.approx(math.exp(-2.0), rel=1e-5)


def test_soft_encode_far_from_every_bin_is_still_finite(bins):
    ab = torch.tensor([[[[500.0]], [[-500.0]]]])
    enc = soft_encode(ab, bins)
    assert torch.isfinite(enc).all() and enc.sum() == pytest.approx(1.0, abs=1e-6)


def test_soft_encode_sparse_agrees_with_dense(bins):
    ab = torch.randn(1, 2, 4, 4) * 30
    idx, w = soft_encode_sparse(ab, bins, k=3)
    dense = soft_encode(ab, bins, k=3)
    assert idx.shape == (1, 3, 4, 4) and w.shape == (1, 3, 4, 4)
    assert torch.allclose(dense.gather(1, idx), w)
    # cross-entropy without the dense target equals the dense one
    logp = torch.log_softmax(torch.randn(1, 261, 4, 4), dim=1)
    assert torch.allclose(-(w * logp.gather(1, idx)).sum(1), -(dense * logp).sum(1), atol=1e-5)


def test_bin_prior_counts_nearest_bins(bins):
    # 3 pixels at bin 5, 1 pixel near bin 7
    ab = torch.stack([bins[5], bins[5], bins[5], bins[7] + 1.0]).T.reshape(1, 2, 2, 2)
    p = bin_prior(ab, bins)
    assert p.shape == (261,) and p.dtype == torch.float64
    assert p[5] == pytest.approx(0.75) and p[7] == pytest.approx(0.25) and p.sum() == pytest.approx(1.0)
    # an iterable of batches gives the same as one tensor
    a2 = torch.randn(3, 2, 8, 8) * 30
    assert torch.allclose(bin_prior([a2[:1], a2[1:]], bins), bin_prior(a2, bins))
    smooth = bin_prior(ab, bins, sigma=5.0)
    assert smooth.sum() == pytest.approx(1.0) and (smooth > 0).sum() > 2 and smooth[5] < 0.75


def test_rebalance_weights():
    p = torch.tensor([0.7, 0.2, 0.1, 0.0], dtype=torch.float64)
    w = rebalance_weights(p, lam=0.5)
    assert (p * w).sum() == pytest.approx(1.0)
    expected = 1.0 / (0.5 * p + 0.5 / 4)
    assert torch.allclose(w / w[0], expected / expected[0])
    assert w[3] > w[2] > w[1] > w[0]  # rarer colours weigh more
    assert torch.allclose(rebalance_weights(p, lam=1.0), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError):
        rebalance_weights(p, lam=1.5)


def test_annealed_mean_formula_limits_and_from_probs(bins):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 261, 3, 4, generator=g, dtype=torch.float64) * 3
    probs = torch.softmax(logits, dim=1)
    T = 0.38
    # the paper's formula written out: f_T(z) = exp(log z / T) / sum exp(log z / T)
    f = torch.exp(torch.log(probs) / T)
    f = f / f.sum(1, keepdim=True)
    expected = torch.einsum("bqhw,qc->bchw", f, bins.double())
    assert torch.allclose(annealed_mean(logits, bins, T), expected, atol=1e-9)
    assert torch.allclose(annealed_mean(probs, bins, T, from_probs=True), expected, atol=1e-9)
    # T = 1: the mean; T -> 0: the mode
    mean = torch.einsum("bqhw,qc->bchw", probs, bins.double())
    assert torch.allclose(annealed_mean(logits, bins, 1.0), mean, atol=1e-9)
    mode = bins.double()[probs.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(annealed_mean(logits, bins, 1e-3), mode, atol=1e-6)
    assert annealed_mean(logits, bins).shape == (2, 2, 3, 4)


def test_annealed_mean_of_soft_encoding_recovers_ab(bins):
    # seeded, and inside the gamut: an out-of-gamut ab has no bins around it to recover it from
    ab = (torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0)) * 30).clamp(-40, 40)
    enc = soft_encode(ab, bins, k=5, sigma=5.0)
    rec = annealed_mean(enc, bins, T=1.0, from_probs=True)
    assert (rec - ab).abs().mean() < 2.0  # quantisation to a 10-unit grid, smoothed
