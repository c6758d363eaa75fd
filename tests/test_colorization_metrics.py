"""Colour metrics of the colorization papers: AuC raw / rebalanced, CIEDE2000, colourfulness and its gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000

from zoo.data.color import join_lab, lab_to_rgb, split_lab
from zoo.data.datasets import resolve_dataset
from zoo.metrics.build import build_metric
from zoo.metrics.colorization import auc_from_counts, ciede2000, colorfulness, error_counts

from helpers import smooth_images


def _score(name, pred, target, **params):
    m = build_metric(name, **params)
    m.update(pred, target)
    return m.compute()


def _lab_image(lab_columns, height=8):
    """RGB (1, 3, height, W) from a list of (L, a, b) columns."""
    lab = torch.tensor(lab_columns, dtype=torch.float64).T[:, None, :].expand(3, height, len(lab_columns))
    return lab_to_rgb(lab[None].contiguous())


def test_ciede2000_equals_skimage():
    rng = np.random.default_rng(0)
    lab1 = np.stack([rng.uniform(0, 100, 4000), rng.uniform(-110, 110, 4000), rng.uniform(-110, 110, 4000)], -1)
    lab2 = lab1 + rng.normal(0, 8, lab1.shape)
    lab2[:200, 1:] = 0  # zero chroma on one side
    lab2[200:400] = lab1[200:400]  # identical colours
    lab1[400:600, 1] = -lab1[400:600, 1]  # hues on both sides of the wrap-around
    ours = ciede2000(torch.from_numpy(lab1.T[None, :, :, None]), torch.from_numpy(lab2.T[None, :, :, None]))
    ref = deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(ours.numpy().reshape(-1), ref, atol=1e-6, rtol=0)


def test_ground_truth_scores_100_percent_and_zero_difference():
    target = resolve_dataset("samples:test").items()[0].load()[None]
    assert _score("auc_raw", target, target).value == pytest.approx(100)
    assert _score("auc_rebal", target, target).value == pytest.approx(100)
    assert _score("deltae2000", target, target).value == pytest.approx(0, abs=1e-9)
    assert _score("colorfulness_gap", target, target).value == pytest.approx(0, abs=1e-9)


def test_auc_of_a_known_error():
    # Every error 4.6 (ceil 5): within the threshold for t = 5..150, i.e. 146 of the 151 thresholds.
    assert auc_from_counts(error_counts(torch.full((10, 10), 4.6))) == pytest.approx(146 / 151 * 100)
    assert auc_from_counts(error_counts(torch.zeros(7))) == pytest.approx(100)
    assert auc_from_counts(error_counts(torch.full((3,), 200.0))) == pytest.approx(0)


def test_rebalancing_weights_each_colour_class_equally():
    # 9 grey columns and 1 saturated one (ab error 50.3 when predicted grey: within for t = 51..150).
    target = _lab_image([(50, 0, 0)] * 9 + [(50, 40, 30.5)])
    pred = _lab_image([(50, 0, 0)] * 10)
    saturated = 100 / 151 * 100
    raw = _score("auc_raw", pred, target, quantize=False).value
    rebal = _score("auc_rebal", pred, target, quantize=False).value
    assert raw == pytest.approx(0.9 * 100 + 0.1 * saturated, abs=1e-6)
    assert rebal == pytest.approx((100 + saturated) / 2, abs=1e-6)


def test_a_shift_in_ab_moves_each_metric_by_the_hand_computed_amount():
    target = _lab_image([(50, 10, -20), (60, -5, 15)])
    pred = _lab_image([(50, 13, -16.5), (60, -2, 18.5)])  # ab + (3, 3.5): error 4.61 everywhere
    assert _score("auc_raw", pred, target, quantize=False).value == pytest.approx(146 / 151 * 100, abs=1e-6)
    expected = deltaE_ciede2000(np.array([[50, 10, -20], [60, -5, 15]]), np.array([[50, 13, -16.5], [60, -2, 18.5]]))
    assert _score("deltae2000", pred, target, quantize=False).value == pytest.approx(expected.mean(), abs=1e-6)
    # Colourfulness of a flat colour is 0.3 sqrt(rg^2 + yb^2) (no spread): 0.3 sqrt(22^2 + 39^2) against grey.
    grey = torch.full((1, 3, 8, 8), 128 / 255.0)
    tint = torch.tensor([150, 128, 100], dtype=torch.float64).div(255).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    assert _score("colorfulness_gap", tint, grey).value == pytest.approx(0.3 * np.hypot(22, 39), abs=1e-9)


def test_gray_scores_high_raw_but_low_rebalanced_auc():
    raw, rebal = build_metric("auc_raw"), build_metric("auc_rebal")
    for item in resolve_dataset("samples:test").items():
        target = item.load()[None]
        l, _ = split_lab(target)
        gray = join_lab(l, torch.zeros_like(target[:, :2]))
        raw.update(gray, target)
        rebal.update(gray, target)
    r, b = raw.compute().value, rebal.compute().value
    assert r > 80 and b < r - 10, (r, b)


def test_metadata_drives_the_boards():
    m = build_metric("auc_rebal", shave=2)
    assert m.info.higher_is_better and m.info.unit == "%" and "shave=2" in m.info.convention
    assert not build_metric("deltae2000").info.higher_is_better


def test_each_image_is_scored_on_its_own_pixels_whatever_the_conversion_memo():
    # Same-size images one after the other (as in an evaluation loop): every metric must see each image.
    ds = resolve_dataset("samples:test").items()
    a = ds[0].load()[None]
    b = torch.flip(a, dims=[-1]).contiguous()
    grey = join_lab(split_lab(a)[0], torch.zeros_like(a[:, :2]))
    m = build_metric("deltae2000")
    m.update(a, a)
    m.update(grey, a)
    m.update(b, b)
    values = m.compute().per_image
    assert values[0] == 0 and values[1] > 1 and values[2] == 0
    with torch.inference_mode():  # as evaluate() runs them
        m = build_metric("auc_raw")
        m.update(a.clone(), a.clone())
        m.update(grey.clone(), a.clone())
        values = m.compute().per_image
    assert values[0] == 100 and values[1] < 100


# ------------------------------------------------------------------------------------------ colorfulness
def _colorfulness_np(img: np.ndarray) -> float:
    r, g, b = (img.astype(np.float64) * 255)
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def test_colorfulness_formula_gray_and_gt():
    x = smooth_images(3, size=32, seed=4)
    vals = colorfulness(x)
    assert np.allclose(vals.numpy(), [_colorfulness_np(im) for im in x.numpy()], rtol=1e-12)
    gray = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    assert torch.all(colorfulness(gray).abs() < 1e-9)

    desaturated = 0.3 * x + 0.7 * x.mean(1, keepdim=True)
    pred_m = build_metric("colorfulness", shave=4, quantize=True, device="cpu")
    gt_m = build_metric("colorfulness_gt", shave=4)
    for m in (pred_m, gt_m):
        m.update(desaturated, x)
    pred_r, gt_r = pred_m.compute(), gt_m.compute()
    assert pred_r.n == gt_r.n == 3 and len(pred_r.per_image) == 3
    assert gt_r.value == pytest.approx(float(vals.mean()))
    assert pred_r.value < 0.5 * gt_r.value  # a desaturating colorizer shows up
    assert not pred_m.info.ranked and "colorfulness_gt" in pred_m.info.description
