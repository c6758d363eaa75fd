"""Colour metrics of the colorization literature; none needs pretrained weights.

- ``auc_raw``, ``auc_rebal`` (Zhang, Isola & Efros, ECCV 2016, Sec. 3.1): the share of pixels whose ab error
  (L2 distance in the ab plane) is within a threshold, swept over the integer thresholds 0, 1, ..., 150 and
  averaged, in %: 100 % means every pixel has exactly the ground truth's ab. ``auc_raw`` pools the pixels of
  the whole test set. ``auc_rebal`` weights each pixel by the inverse frequency, over the test set, of its
  ground-truth colour class (its nearest ab bin, :mod:`zoo.data.abbins`, grid 10); that equals the mean over the
  classes present of each class's own curve, so the few saturated pixels count as much as the many grey
  ones. Their Table 1: predicting ab = 0 scores 89.1 % raw but 58.0 % rebalanced.
- ``deltae2000``: the mean CIEDE2000 colour difference to the ground truth (Sharma, Wu & Dalal 2005, as
  ``skimage.color.deltaE_ciede2000``), per image, then over images.
- ``colorfulness``, ``colorfulness_gt``: the Hasler-Süsstrunk colourfulness (2003) of the outputs and of the
  ground truth, per image; descriptive, not ranked.
- ``colorfulness_gap``: |C(output) - C(ground truth)| per image, C the colourfulness of the two columns
  above: how far a colorizer is from the saturation of the truth, either way.

Inputs are RGB in [0, 1] as every metric gets them. The AuCs, CIEDE2000 and the gap quantize them to 8 bits
first (the image that would be saved) and remove ``shave`` pixels from each border; the AuCs and CIEDE2000
then convert to CIELAB (D65) with :mod:`zoo.data.color`. The two colourfulness columns take the images as they
are. Per-image values are summarised as every per-image metric's
(:func:`zoo.metrics.perimage.per_image_result`: mean, population std).
"""

from __future__ import annotations

import math

import torch

from zoo.data.color import rgb_to_lab
from zoo.metrics.perimage import check_pair, per_image_result
from zoo.plugins.core_metrics import declared_info
from zoo.plugins.metric_interface import Metric, MetricResult, metric_factory

THRESHOLDS = 150  # ab error thresholds 0, 1, ..., 150 (Zhang et al.)
BIN_GRID = 10.0


_LAB_MEMO: list[tuple[tuple, torch.Tensor]] = []  # the last two conversions (see _lab)


def _lab(x: torch.Tensor, shave: int, quantize: bool) -> torch.Tensor:
    """``x`` in CIELAB (float64) under the convention. The colour metrics of one evaluation see the same two
    tensors in turn, so the last conversions are kept: each image is converted once, not once per metric."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB (B, 3, H, W), got {tuple(x.shape)}")
    # The memo holds the tensor, so identity is reliable; inference tensors (evaluation) keep no version.
    version = -1 if x.is_inference() else x._version
    for (source, seen, s, q), lab in _LAB_MEMO:
        if source is x and seen == version and s == shave and q == quantize:
            return lab
    key = (x, version, shave, quantize)
    x = x.detach().to(torch.float64).clamp(0, 1)
    if quantize:
        x = torch.round(x * 255) / 255
    if shave:
        x = x[..., shave:-shave, shave:-shave]
    lab = rgb_to_lab(x)
    _LAB_MEMO.insert(0, (key, lab))
    del _LAB_MEMO[2:]  # a prediction and a target
    return lab


def error_counts(ab_error: torch.Tensor) -> torch.Tensor:
    """How many errors fall at each integer threshold: ``counts[t]`` errors e with t - 1 < e <= t (t = 0 takes
    e = 0), ``counts[151]`` the ones above 150. Their cumulative sum is the curve of Zhang et al."""
    k = torch.ceil(ab_error.reshape(-1)).clamp(0, THRESHOLDS + 1).long()
    return torch.bincount(k, minlength=THRESHOLDS + 2).cpu()


def auc_from_counts(counts: torch.Tensor) -> float:
    """The AuC in % from :func:`error_counts` (summed over any pixels): the mean over thresholds 0..150 of
    the share of errors within the threshold."""
    total = float(counts.sum())
    if total == 0:
        return math.nan
    within = torch.cumsum(counts[: THRESHOLDS + 1].double(), 0) / total
    return float(within.mean()) * 100


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference of Lab images (..., 3, H, W) -> (..., H, W), kL = kC = kH = 1."""
    L1, a1, b1 = lab1.unbind(-3)
    L2, a2, b2 = lab2.unbind(-3)
    c_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.atan2(b1, a1p) % (2 * math.pi)
    h2p = torch.atan2(b2, a2p) % (2 * math.pi)
    chroma_zero = (c1p * c2p) == 0
    dL, dC = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(chroma_zero, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2)
    L_bar, C_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = torch.where((h1p - h2p).abs() > math.pi,
                        torch.where(h_sum < 2 * math.pi, h_sum + 2 * math.pi, h_sum - 2 * math.pi), h_sum) / 2
    h_bar = torch.where(chroma_zero, h_sum, h_bar)
    t = (1 - 0.17 * torch.cos(h_bar - math.radians(30)) + 0.24 * torch.cos(2 * h_bar)
         + 0.32 * torch.cos(3 * h_bar + math.radians(6)) - 0.20 * torch.cos(4 * h_bar - math.radians(63)))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(C_bar**7 / (C_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (L_bar - 50) ** 2 / torch.sqrt(20 + (L_bar - 50) ** 2)
    s_c = 1 + 0.045 * C_bar
    s_h = 1 + 0.015 * C_bar * t
    r_t = -torch.sin(2 * d_theta) * r_c
    return torch.sqrt((dL / s_l) ** 2 + (dC / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dC / s_c) * (dH / s_h))


class _ColourMetric(Metric):
    def __init__(self, name: str, *, shave: int = 0, quantize: bool = True, convention: str, description: str):
        self.shave, self.quantize = int(shave), bool(quantize)
        q = ", uint8" if self.quantize else ""
        self.info = declared_info(name, convention=f"{convention}, shave={self.shave}{q}", description=description)
        self.reset()

    def reset(self) -> None:
        self.values: list[float] = []

    def compute(self) -> MetricResult:
        return per_image_result(self.info, self.values)


class AbErrorAuc(_ColourMetric):
    """``auc_raw`` (``rebalanced=False``) or ``auc_rebal``: see the module docstring."""

    def __init__(self, name: str, *, rebalanced: bool, **kw):
        self.rebalanced = rebalanced
        how = "class-rebalanced (inverse ab-bin frequency over the set)" if rebalanced else "pixels pooled over the set"
        super().__init__(name,
                         convention=f"ab L2 error, thresholds 0-{THRESHOLDS}, {'rebal' if rebalanced else 'raw'}",
                         description=f"Zhang et al. 2016 AuC of the ab error curve, {how}", **kw)

    def reset(self) -> None:
        super().reset()
        self._counts: dict[int, torch.Tensor] = {}  # ground-truth class (or -1: all pixels) -> error counts

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        lab_p, lab_t = _lab(pred, self.shave, self.quantize), _lab(target, self.shave, self.quantize)
        err = torch.linalg.vector_norm(lab_p[:, 1:] - lab_t[:, 1:], dim=1)  # (B, H, W)
        for i in range(err.shape[0]):
            if not self.rebalanced:
                counts = error_counts(err[i])
                self._add(-1, counts)
                self.values.append(auc_from_counts(counts))
                continue
            by_class = _class_error_counts(lab_t[i, 1:], err[i])
            for c, counts in by_class.items():
                self._add(c, counts)
            # the same rule within one image
            self.values.append(sum(auc_from_counts(c) for c in by_class.values()) / len(by_class))

    def _add(self, key: int, counts: torch.Tensor) -> None:
        self._counts[key] = self._counts[key] + counts if key in self._counts else counts

    def compute(self) -> MetricResult:
        result = super().compute()
        if self._counts:  # the set's value pools pixels (raw) or classes (rebalanced) over all images
            result.value = sum(auc_from_counts(c) for c in self._counts.values()) / len(self._counts)
        return result


def _class_error_counts(ab: torch.Tensor, err: torch.Tensor) -> dict[int, torch.Tensor]:
    """:func:`error_counts` per ground-truth colour class. A class is the ab bin's grid cell (zoo.data.abbins, rule
    "cell": every 8-bit colour's own cell is an in-gamut bin, so the cell is the nearest bin)."""
    cells = torch.floor((ab + BIN_GRID / 2) / BIN_GRID).long() + _CELL_OFFSET  # (2, H, W), both >= 0
    cls = (cells[0] * _CELL_SPAN + cells[1]).reshape(-1)
    k = torch.ceil(err.reshape(-1)).clamp(0, THRESHOLDS + 1).long()
    width = THRESHOLDS + 2
    table = torch.bincount(cls * width + k, minlength=_CELL_SPAN**2 * width).reshape(-1, width).cpu()
    present = torch.nonzero(table.sum(1)).reshape(-1).tolist()
    return {c: table[c] for c in present}


_CELL_OFFSET = 13  # |a|, |b| < 130 for any colour: cells -13..13
_CELL_SPAN = 2 * _CELL_OFFSET + 1


class DeltaE2000(_ColourMetric):
    def __init__(self, name: str = "deltae2000", **kw):
        super().__init__(name, convention="CIEDE2000, D65",
                         description="mean CIEDE2000 colour difference to the ground truth", **kw)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        d = ciede2000(_lab(pred, self.shave, self.quantize), _lab(target, self.shave, self.quantize))
        self.values += d.mean(dim=(-2, -1)).tolist()


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colorfulness per image, (B,) float64, on the [0, 255] scale:
    rg = R-G, yb = (R+G)/2 - B, M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(images.shape)}")
    x = images.detach().to(torch.float64).clamp(0, 1) * 255
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.var(dim=(1, 2), unbiased=False) + yb.var(dim=(1, 2), unbiased=False))
    mean = torch.sqrt(rg.mean(dim=(1, 2)) ** 2 + yb.mean(dim=(1, 2)) ** 2)
    return (std + 0.3 * mean).cpu()


class ColorfulnessMetric(Metric):
    """Colorfulness of the predictions (``colorfulness``) or of the targets (``colorfulness_gt``).

    Descriptive, not ranked (``MetricInfo.ranked=False``): a colorizer should come close to the ground truth's
    colorfulness, not maximise its own. ``higher_is_better`` is True only because the field must be set."""

    def __init__(self, name: str = "colorfulness", *, of: str = "pred"):
        self.of = of
        if of == "pred":
            desc = ("Hasler & Süsstrunk 2003 colorfulness of the predictions. Not better when higher in "
                    "itself: compare with colorfulness_gt (the ground truth's); a desaturated colorizer scores "
                    "well below it")
        else:
            desc = "Hasler & Süsstrunk 2003 colorfulness of the ground truth, the reference for colorfulness"
        self.info = declared_info(name, convention="Hasler-Süsstrunk 2003, RGB 0-255", description=desc)
        self.reset()

    def reset(self) -> None:
        self._values: list[float] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        check_pair(pred, target)
        self._values.extend(colorfulness(pred if self.of == "pred" else target).tolist())

    def compute(self) -> MetricResult:
        return per_image_result(self.info, self._values)


class ColorfulnessGap(_ColourMetric):
    def __init__(self, name: str = "colorfulness_gap", **kw):
        super().__init__(name, convention="|C(out) - C(gt)|, Hasler-Süsstrunk",
                         description="distance of the output's colourfulness from the ground truth's", **kw)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        s = self.shave
        if self.quantize:
            pred, target = (torch.round(x.clamp(0, 1) * 255) / 255 for x in (pred, target))
        if s:
            pred, target = pred[..., s:-s, s:-s], target[..., s:-s, s:-s]
        self.values += (colorfulness(pred) - colorfulness(target)).abs().tolist()


@metric_factory("auc_raw", "auc_rebal")
def _auc_factory(name, *, shave: int = 0, quantize: bool = True, **ignored) -> Metric:
    return AbErrorAuc(name, rebalanced=name == "auc_rebal", shave=shave, quantize=quantize)


@metric_factory("deltae2000")
def _deltae_factory(name, *, shave: int = 0, quantize: bool = True, **ignored) -> Metric:
    return DeltaE2000(name, shave=shave, quantize=quantize)


@metric_factory("colorfulness", "colorfulness_gt")
def _colorfulness_factory(name, **ignored) -> Metric:
    return ColorfulnessMetric(name, of="target" if name.endswith("_gt") else "pred")


@metric_factory("colorfulness_gap")
def _gap_factory(name, *, shave: int = 0, quantize: bool = True, **ignored) -> Metric:
    return ColorfulnessGap(name, shave=shave, quantize=quantize)
