"""Quantised ab space for classification colorizers (Zhang, Isola & Efros, "Colorful Image Colorization",
ECCV 2016): the in-gamut bins, soft encoding of ground-truth ab, the class-rebalancing prior and weights,
and the annealed-mean decoding.

All functions are batched torch, on the input's device. ``bins`` is a ``(Q, 2)`` tensor of bin centres
``(a, b)`` as returned by :func:`ab_gamut_bins`.

Bin count. With a 10-unit grid (centres at multiples of 10, cell ``[c - 5, c + 5)`` on each axis),
:func:`ab_gamut_bins` keeps **261** bins under the default rule ``"cell"``: a cell is kept when it
contains the ab of at least one 8-bit sRGB colour (any L). That is the exact set for 8-bit images: it was
checked once against all 2^24 colours (261 cells); here it is computed from the 6 faces of the 8-bit RGB
cube, which give the same set because the ab fibre of any colour (L varying at fixed ab) leaves the cube
through a face. The continuous gamut touches one more cell (262). The rule ``"centre"`` (a cell is kept
when its centre is in gamut for some L in [0, 100], step 0.05) keeps **229**. Zhang et al. kept 313; their
exact procedure is not published (their ``pts_in_hull.npy`` spans about the same a/b range but includes
more cells, i.e. a looser in-gamut test), so the counts differ. Models that load Zhang's released weights
must use Zhang's own 313 centres, not these.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

from zoo.data.color import lab_to_rgb, rgb_to_lab

__all__ = [
    "ab_gamut_bins",
    "nearest_bin",
    "soft_encode",
    "soft_encode_sparse",
    "bin_prior",
    "rebalance_weights",
    "annealed_mean",
]

_CHUNK = 1 << 16  # pixels per chunk when computing pixel-to-bin distances


@functools.lru_cache(maxsize=8)
def _gamut_bins_cpu(grid: float, rule: str) -> torch.Tensor:
    half = grid / 2.0
    if rule == "cell":
        g = torch.arange(256, dtype=torch.float64, device="cpu") / 255.0
        u, v = torch.meshgrid(g, g, indexing="ij")
        u, v = u.reshape(-1), v.reshape(-1)
        faces = []
        for c in (0.0, 1.0):
            w = torch.full_like(u, c)
            faces += [torch.stack((w, u, v)), torch.stack((u, w, v)), torch.stack((u, v, w))]
        rgb = torch.cat(faces, dim=1)[None, :, :, None]  # (1, 3, N, 1)
        ab = rgb_to_lab(rgb)[0, 1:, :, 0]  # (2, N)
        cells = torch.floor((ab + half) / grid).long()  # cell index k <-> centre k * grid
        cells = torch.unique(cells.T, dim=0)  # sorted by a, then b
        centres = cells.to(torch.float64) * grid
    elif rule == "centre":
        k = int(120 // grid) + 1
        c = torch.arange(-k, k + 1, dtype=torch.float64, device="cpu") * grid
        a, b = torch.meshgrid(c, c, indexing="ij")
        a, b = a.reshape(-1), b.reshape(-1)
        L = torch.linspace(0.0, 100.0, 2001, dtype=torch.float64, device="cpu")
        lab = torch.stack(
            (L[:, None].expand(-1, a.numel()), a[None].expand(L.numel(), -1), b[None].expand(L.numel(), -1))
        )
        rgb = lab_to_rgb(lab[None], clamp=False)[0]  # (3, nL, nC)
        tol = 1e-9
        ok = ((rgb >= -tol) & (rgb <= 1.0 + tol)).all(dim=0).any(dim=0)
        centres = torch.stack((a[ok], b[ok]), dim=1)
    else:
        raise ValueError(f"rule must be 'cell' or 'centre', got {rule!r}")
    return centres.to(torch.float32)


def ab_gamut_bins(grid: float = 10, rule: str = "cell", *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Centres ``(Q, 2)`` (columns a, b; sorted by a then b) of the ``grid``-unit ab bins in the sRGB gamut.

    Bin centres are the multiples of ``grid``; a bin is the cell ``[c - grid/2, c + grid/2)`` per axis.
    ``rule="cell"`` (default) keeps a bin when its cell contains the ab of some 8-bit sRGB colour (for
    ``grid=10``: Q = 261), so every real pixel's ab lies in a kept cell; ``rule="centre"`` keeps it when
    its centre is in gamut for some L in [0, 100] (Q = 229). See the module docstring for why Zhang et al.
    have 313. Computed once per (grid, rule) and cached (about 0.3 s); a fresh tensor is returned each call.
    """
    return _gamut_bins_cpu(float(grid), rule).to(device=device, dtype=dtype, copy=True)


def _flatten_ab(ab: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    if ab.dim() < 3 or ab.shape[-3] != 2:
        raise ValueError(f"ab must have shape (B, 2, H, W), got {tuple(ab.shape)}")
    lead, (h, w) = ab.shape[:-3], ab.shape[-2:]
    flat = ab.reshape(-1, 2, h * w).transpose(1, 2).reshape(-1, 2)  # (N, 2), pixel-major
    return flat, (*lead, h, w)


def _sq_dist(points: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    # (N, 2), (Q, 2) -> (N, Q) squared Euclidean distances (exact difference form: only 2 coordinates).
    d = points[:, None, :] - bins[None, :, :]
    return (d * d).sum(-1)


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Index (B, H, W) (int64) of the nearest bin centre for every pixel of ``ab`` (B, 2, H, W)."""
    flat, shape = _flatten_ab(ab)
    bins = bins.to(device=flat.device, dtype=flat.dtype)
    out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    for s in range(0, flat.shape[0], _CHUNK):
        out[s : s + _CHUNK] = _sq_dist(flat[s : s + _CHUNK], bins).argmin(dim=1)
    lead, (h, w) = shape[:-2], shape[-2:]
    return out.reshape(*lead, h, w)


def soft_encode_sparse(
    ab: torch.Tensor, bins: torch.Tensor, k: int = 5, sigma: float = 5.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse form of :func:`soft_encode`: ``(index (B, k, H, W) int64, weight (B, k, H, W))``.

    The k nearest bins of every pixel and their normalised Gaussian weights
    ``exp(-d^2 / (2 sigma^2))``. Cross-entropy against it is ``-(weight * logp.gather(1, index)).sum(1)``
    without ever materialising the (B, Q, H, W) target.
    """
    flat, shape = _flatten_ab(ab)
    bins = bins.to(device=flat.device, dtype=flat.dtype)
    q = bins.shape[0]
    if not 1 <= k <= q:
        raise ValueError(f"k must be in [1, {q}], got {k}")
    idx = torch.empty(flat.shape[0], k, dtype=torch.long, device=flat.device)
    wts = torch.empty(flat.shape[0], k, dtype=flat.dtype, device=flat.device)
    for s in range(0, flat.shape[0], _CHUNK):
        d2, i = _sq_dist(flat[s : s + _CHUNK], bins).topk(k, dim=1, largest=False)
        # Subtracting the smallest distance before exp changes nothing after normalising but avoids
        # underflow to 0/0 for points far from every bin.
        w = torch.exp(-(d2 - d2[:, :1]) / (2.0 * sigma * sigma))
        idx[s : s + _CHUNK] = i
        wts[s : s + _CHUNK] = w / w.sum(dim=1, keepdim=True)
    lead, (h, w) = shape[:-2], shape[-2:]

    def unflat(t):
        return t.reshape(-1, h * w, k).transpose(1, 2).reshape(*lead, k, h, w)

    return unflat(idx), unflat(wts)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, k: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Soft-encode ab (B, 2, H, W) as a distribution (B, Q, H, W) over the ``k`` nearest bins.

    Weights are Gaussian in the ab distance, ``exp(-d^2 / (2 sigma^2))`` (Zhang et al.: k = 5,
    sigma = 5), normalised to sum to 1 over Q. Distances are computed in chunks of pixels and reduced
    with ``topk``, so the only full-size (B, Q, H, W) tensor is the output itself.
    """
    idx, w = soft_encode_sparse(ab, bins, k=k, sigma=sigma)
    q = bins.shape[0]
    out = torch.zeros((*idx.shape[:-3], q, *idx.shape[-2:]), dtype=w.dtype, device=w.device)
    return out.scatter_(-3, idx, w)


def bin_prior(
    data: torch.Tensor | Iterable[torch.Tensor], bins: torch.Tensor, *, sigma: float | None = None
) -> torch.Tensor:
    """Empirical probability (Q,) (float64) of each bin, from hard nearest-bin counts over all pixels.

    ``data`` is one ab tensor (B, 2, H, W) or an iterable of them (e.g. a generator over a dataset), so
    a prior over a large dataset is accumulated batch by batch. With ``sigma`` the histogram is then
    smoothed with a Gaussian of that width over the bin centres (Zhang et al. smooth with sigma = 5
    before rebalancing) and renormalised. Bins never hit have probability 0 (before smoothing).
    """
    if isinstance(data, torch.Tensor):
        data = (data,)
    q = bins.shape[0]
    counts = torch.zeros(q, dtype=torch.float64, device="cpu")
    n = 0
    for ab in data:
        idx = nearest_bin(ab, bins)
        counts += torch.bincount(idx.reshape(-1).cpu(), minlength=q).to(torch.float64)
        n += idx.numel()
    if n == 0:
        raise ValueError("bin_prior: no pixels given")
    p = counts / counts.sum()
    if sigma is not None and sigma > 0:
        c = bins.detach().to(device="cpu", dtype=torch.float64)
        kernel = torch.exp(-_sq_dist(c, c) / (2.0 * sigma * sigma))
        p = kernel @ p
        p = p / p.sum()
    return p.to(bins.device)


def rebalance_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Class-rebalancing weights (Q,): ``w ∝ ((1 - lam) p + lam / Q)^-1``, scaled so ``sum_q p_q w_q = 1``.

    Zhang et al. use lam = 0.5. With lam = 1 every weight is 1.
    """
    p = prior.to(torch.float64)
    if p.dim() != 1:
        raise ValueError(f"prior must be 1-D (Q,), got shape {tuple(prior.shape)}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    p = p / p.sum()
    w = 1.0 / ((1.0 - lam) * p + lam / p.numel())
    w = w / (p * w).sum()
    return w.to(dtype=prior.dtype if prior.is_floating_point() else torch.float64)


def annealed_mean(
    z: torch.Tensor, bins: torch.Tensor, T: float = 0.38, *, from_probs: bool = False
) -> torch.Tensor:
    """Decode a (B, Q, H, W) bin distribution to ab (B, 2, H, W) with Zhang's annealed mean.

    ``f_T(p) = exp(log p / T) / sum_q exp(log p_q / T)``, then the expectation of the bin centres under
    ``f_T``. By default ``z`` holds **logits**: since ``log softmax(z) = z - const``, ``f_T(softmax(z))``
    equals ``softmax(z / T)``, which is what is computed (numerically stable). With ``from_probs=True``
    ``z`` holds probabilities (zeros allowed). T = 1 gives the mean, T -> 0 the mode; Zhang uses 0.38.
    """
    if z.dim() < 3 or z.shape[-3] != bins.shape[0]:
        raise ValueError(f"expected (B, {bins.shape[0]}, H, W) bin scores, got {tuple(z.shape)}")
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    if from_probs:
        logits = torch.log(z.clamp(min=torch.finfo(z.dtype).tiny))
    else:
        logits = z
    q = torch.softmax(logits / T, dim=-3)
    c = bins.to(device=z.device, dtype=q.dtype)
    return torch.einsum("...qhw,qc->...chw", q, c)
