"""``zhang``: "Colorful Image Colorization" (Zhang, Isola & Efros, ECCV 2016, arXiv:1603.08511).

Colorization as classification. A VGG-style network maps L to a distribution over quantised ab bins at
1/4 of the input resolution; it is trained with a multinomial cross-entropy against *soft-encoded*
targets, re-weighted per pixel so that rare (saturated) colours count more; at test time the distribution
is decoded with the *annealed mean* (softmax temperature T = 0.38) and upsampled to the input size.
Seed 001 re-states this method (its CLVGG models) and seed 000 ("Super Colorization") turned the same
network into a regression model (both in docs/sources.md); the paper's method and seed 000's variant are
the presets ``paper`` and ``super_colorization``.

Faithful to the paper:
- 8 blocks of 3x3 conv + ReLU (2, 2, 3, 3, 3, 3, 3, 3 convolutions), widths 64, 128, 256, 512, 512, 512,
  512, 256; the last convolution of blocks 1-3 has stride 2 (1/8 resolution), blocks 5 and 6 are dilated
  by 2, block 8 starts with a 4x4 stride-2 transposed convolution (back to 1/4 resolution); batch norm
  closes blocks 1-7 (block 8 has none, as in the authors' released network); a 1x1 convolution gives the
  Q bin logits. Input L is centred as in the paper (L - 50).
- Loss: cross-entropy against the soft encoding of the ground truth ab (5 nearest bins, Gaussian sigma = 5)
  at 1/4 resolution, times the class-rebalancing weight of the target's nearest bin: weights from the
  empirical bin prior smoothed with a Gaussian (sigma = 5), mixed with the uniform distribution (lambda =
  0.5), inverted and normalised so that their expectation under the prior is 1 (paper eq. 3-4).
- Decoding: annealed mean, T = 0.38, then bilinear upsampling to the input size.
- Optimiser: Adam, lr 3e-5, betas (0.9, 0.99), weight decay 1e-3; batch 40 of 176x176 crops (the crop size
  of the authors' training setup).

Adapted (and why):
- Bins: Q comes from :func:`zoo.ab_gamut_bins` (grid 10; 261 in-gamut bins for 8-bit sRGB) rather
  than the authors' published 313 (whose exact in-gamut test is unpublished; see :mod:`zoo.data.abbins`). The
  bin centres are stored in the model (buffer ``bins``) so a checkpoint carries its own quantisation.
- The prior is computed from the batches given to :meth:`ZhangRecipe.prepare` (the training data the loop
  shows; the paper used all of ImageNet) and is stored as model buffers ``prior`` and ``rebalance`` so it
  ships inside the safetensors checkpoint.
- Targets at 1/4 resolution are the ab image area-averaged over 4x4 blocks; the loss is averaged over
  pixels rather than summed (a constant factor).
- Inputs whose sides are not multiples of 8 are padded (edge replication) and the output cropped back, so
  any H x W works.
- The paper lowers the learning rate by hand (3e-5 -> 1e-5 -> 3e-6) when the loss plateaus; here the rate
  is constant.

Preset ``super_colorization`` (seed 000): same body, the classification head replaced by a 2-channel
regression head (1x1 convolution, bilinear upsampling to the input size, 110 * tanh) trained with the mean
squared error (the seed minimises the RMSE, which has the same minimiser). The seed reports about 24M
parameters without saying which layers it removed; keeping Zhang's body gives about 32M (see the tests).

Preset ``cpu`` (suite color-classic): 1/4 of the paper's widths, batch 32 of 64 px crops, rate 5e-4 without
weight decay (the paper's rate is for batch 40 and 450k steps); at batch 8 the cross-entropy stalled after
the first hundred steps. The runs: docs/tuning.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import Recipe, Stage, ab_gamut_bins, annealed_mean, bin_prior, rebalance_weights, soft_encode_sparse

_HEADS = ("classification", "regression")


@dataclass
class ZhangConfig(zoo.TrainConfig):
    # -- architecture (defaults: the paper) --
    widths: tuple[int, ...] = zoo.bounded((64, 128, 256, 512, 512, 512, 512, 256), min=1)  # blocks conv1 .. conv8
    head: str = "classification"  # "classification" (the paper) or "regression" (seed 000)
    grid: float = 10.0  # ab bin size; Q = number of in-gamut bins (zoo.data.abbins)
    temperature: float = 0.38  # annealed-mean T
    ab_scale: float = 110.0  # regression head: ab = ab_scale * tanh(.)
    # -- loss --
    rebalance_lambda: float = 0.5  # mix of prior and uniform; 1.0 turns rebalancing off
    prior_sigma: float = 5.0  # Gaussian smoothing of the empirical prior (ab units)
    encode_k: int = zoo.bounded(5, min=1)  # soft encoding: nearest bins
    encode_sigma: float = 5.0  # soft encoding: Gaussian width (ab units)
    # -- training --
    batch_size: int = 40
    patch_size: int = 176
    lr: float = 3e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    weight_decay: float = 1e-3


def _replicate_pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right by edge replication up to a multiple of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class Zhang(zoo.Colorizer):
    """Zhang et al.'s colorization network. ``forward`` returns ab at the input size."""

    # The network reaches 1/8 resolution, then comes back to 1/4.
    multiple = 8

    def __init__(self, cfg: ZhangConfig):
        super().__init__()
        if cfg.head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}, got {cfg.head!r}")
        if len(cfg.widths) != 8:
            raise ValueError(f"widths must list the 8 block widths, got {cfg.widths!r}")
        self.cfg = cfg
        w = cfg.widths
        # (convolutions, width, stride of the last conv, dilation, batch norm at the end)
        plan = [(2, w[0], 2, 1, True), (2, w[1], 2, 1, True), (3, w[2], 2, 1, True), (3, w[3], 1, 1, True),
                (3, w[4], 1, 2, True), (3, w[5], 1, 2, True), (3, w[6], 1, 1, True)]
        blocks, cin = [], 1
        for n, cout, stride, dil, bn in plan:
            layers: list[nn.Module] = []
            for i in range(n):
                s = stride if i == n - 1 else 1
                layers += [nn.Conv2d(cin, cout, 3, stride=s, padding=dil, dilation=dil), nn.ReLU(inplace=True)]
                cin = cout
            if bn:
                layers.append(nn.BatchNorm2d(cout))
            blocks.append(nn.Sequential(*layers))
        blocks.append(nn.Sequential(  # conv8: back to 1/4 resolution
            nn.ConvTranspose2d(cin, w[7], 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[7], w[7], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[7], w[7], 3, padding=1), nn.ReLU(inplace=True)))
        self.body = nn.Sequential(*blocks)

        # Bin centres, computed on the CPU even when the model is built on the meta device
        # (ab_gamut_bins caches a CPU tensor; it must not be computed under a meta default device).
        with torch.device("cpu"):
            bins = ab_gamut_bins(cfg.grid)
        q = bins.shape[0]
        self.num_bins = q
        self.register_buffer("bins", torch.empty(q, 2))
        if not self.bins.is_meta:
            with torch.no_grad():
                self.bins.copy_(bins)
        # Empirical prior of the bins and the class-rebalancing weights; filled by ZhangRecipe.prepare and
        # saved in checkpoints. Until then: a uniform prior, all weights 1.
        self.register_buffer("prior", torch.full((q,), 1.0 / q))
        self.register_buffer("rebalance", torch.ones(q))

        out = q if cfg.head == "classification" else 2
        self.head = nn.Conv2d(w[7], out, 1)

    # -- pieces used by the recipe ------------------------------------------------------------------
    def features(self, l: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """conv8 features at 1/4 of the padded input size, and the original (H, W)."""
        x, size = _replicate_pad(l - 50.0, self.multiple)
        return self.body(x), size

    def logits(self, l: torch.Tensor) -> torch.Tensor:
        """Bin logits (B, Q, H'/4, W'/4), H', W' the input size padded to a multiple of 8."""
        feats, _ = self.features(l)
        return self.head(feats)

    def _regress(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # 1x1 conv, then upsample, then tanh: the same as a 1x1 conv at full size on upsampled features,
        # at 1/16 of the cost.
        z = self.head(feats)
        z = F.interpolate(z, scale_factor=4, mode="bilinear", align_corners=False)
        return self.cfg.ab_scale * torch.tanh(z[..., : size[0], : size[1]])

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        feats, size = self.features(l)
        if self.cfg.head == "regression":
            return self._regress(feats, size)
        ab = annealed_mean(self.head(feats), self.bins, T=self.cfg.temperature)
        ab = F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
        return ab[..., : size[0], : size[1]]


class ZhangRecipe(Recipe):
    """Class-rebalanced multinomial cross-entropy (or MSE for the regression head), Adam."""

    stages = (Stage("main"),)

    def prepare(self, batches) -> None:
        """Empirical ab prior of the training batches -> model buffers ``prior`` and ``rebalance``."""
        model, cfg = self.model, self.config
        if cfg.head != "classification":
            return
        bins = model.bins.detach().cpu()
        abs_ = [b["ab"].detach().float().cpu() for b in batches]
        if not abs_:
            self.ctx.note("zhang prior: no batches given -> uniform prior, no class rebalancing")
            return
        prior = bin_prior(abs_, bins, sigma=cfg.prior_sigma)
        weights = rebalance_weights(prior, lam=cfg.rebalance_lambda)
        with torch.no_grad():
            model.prior.copy_(prior.to(model.prior))
            model.rebalance.copy_(weights.to(model.rebalance))
        pixels = sum(a.numel() // 2 for a in abs_)
        self.ctx.note(f"zhang prior: from {pixels} training pixels, Q={bins.shape[0]}, "
                      f"lambda={cfg.rebalance_lambda}")

    def start_stage(self, stage: Stage) -> None:
        cfg = self.config
        self.optimizers["main"] = self.adam(self.model.parameters(), weight_decay=cfg.weight_decay)

    def classification_loss(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.rebalanced_ce(F.log_softmax(self.model.logits(l).float(), dim=1), ab)

    def rebalanced_ce(self, logp: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Class-rebalanced cross-entropy of bin log-probabilities ``logp`` (B, Q, h, w) against ``ab``."""
        model, cfg = self.model, self.config
        target, _ = _replicate_pad(ab, model.multiple)
        target = F.avg_pool2d(target, 4)  # ground truth at the output's 1/4 resolution
        idx, wts = soft_encode_sparse(target.float(), model.bins, k=cfg.encode_k, sigma=cfg.encode_sigma)
        logp = logp.expand(-1, -1, *target.shape[-2:])  # a (1, Q, 1, 1) prediction holds for every pixel
        ce = -(wts * logp.gather(1, idx)).sum(1)  # (B, h, w)
        nearest = idx.gather(1, wts.argmax(1, keepdim=True)).squeeze(1)  # argmax of the soft target
        v = model.rebalance[nearest]
        return (v * ce).mean()

    def regression_loss(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        s = self.config.ab_scale
        return F.mse_loss(self.model(l) / s, ab / s)

    def loss(self, batch) -> tuple[str, torch.Tensor]:
        """``(name, value)`` of the head's loss on ``batch``."""
        if self.config.head == "classification":
            return "ce", self.classification_loss(batch["l"], batch["ab"])
        return "mse", self.regression_loss(batch["l"], batch["ab"])

    def training_step(self, batch, stage, step):
        with self.autocast():  # the forward pass only: backward and the optimiser step run outside autocast
            name, loss = self.loss(batch)
        return {name: self.backward_step(loss, "main")}

    def validation_losses(self, batch, stage):
        with self.autocast():
            name, loss = self.loss(batch)
        return {name: loss}

    def reference_losses(self, batch, stage):
        # without looking at the image, the best bin distribution is the training prior, at every pixel
        if self.config.head == "classification":
            log_prior = self.model.prior.double().clamp_min(1e-12).log().float()
            logp = log_prior.view(1, -1, 1, 1).expand(batch["ab"].shape[0], -1, 1, 1)
            return {"ce": self.rebalanced_ce(logp, batch["ab"])}
        s = self.config.ab_scale
        return {"mse": (batch["ab"] / s).pow(2).mean()}  # ab = 0


ENTRY = zoo.ModelEntry(
    name="zhang",
    build=Zhang,
    config=ZhangConfig,
    summary="Zhang et al.: VGG-style net classifying ab into gamut bins, class rebalancing, annealed mean",
    reference="Zhang, Isola & Efros, Colorful Image Colorization, ECCV 2016, arXiv:1603.08511; "
              "preset super_colorization: seed 000 (docs/sources.md)",
    presets={
        "paper": {},
        # Seed 000 ("Super Colorization"): regression head, (R)MSE loss.
        "super_colorization": {"head": "regression"},
        # Same family at 1/8 width (1/4 for the first block), small CPU patches.
        "tiny": {"widths": (16, 16, 32, 64, 64, 64, 64, 32), "batch_size": 8, "patch_size": 48,
                 "lr": 1e-3, "weight_decay": 0.0},
        # Sized for a CPU hour (suite color-classic): 1/4 of the paper's widths, 64 px crops, a faster rate.
        "cpu": {"widths": (16, 32, 64, 128, 128, 128, 128, 64), "batch_size": 32, "patch_size": 64,
                "lr": 5e-4, "weight_decay": 0.0},
    },
    recipe=ZhangRecipe,
)
