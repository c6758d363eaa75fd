"""``unet_vae``: the U-Net / VAE hybrid colorizer of seed 003 ("Enhancing Image Colorization
Architectures", slides; docs/sources.md#seed-003).

The slides list the layer shapes of their best model for a 150x150 input::

    Encoder 1: 1x150x150  -> 64x74x74        (4x4 conv, stride 2, no padding)
    Encoder 2: 64x74x74   -> 64x36x36
    Encoder 3: 64x36x36   -> 64x17x17
    VAE:       64x17x17   -> 64x17x17        (mean and log-variance, sample)
    Decoder 1: 128x17x17  -> 64x38x38        (z concatenated with encoder 3; 6x6 transposed conv, stride 2)
    Decoder 2: 128x38x38  -> 64x80x80        (concatenated with encoder 2, interpolated 36 -> 38)
    Decoder 3: 64x80x80   -> 64x164x164      (no skip)
    Final:     64x164x164 -> 3x150x150

and "3 layer K=4 S=2 encoder, VAE, 3 layer K=6 decoder, interpolation in skip connections". They also
name a second good configuration: 4 encoder layers K=3 S=2, VAE, 4 decoder layers K=3 S=2 (preset
``k3_depth4``).

Faithful: the shapes above, exactly (the parameter test pins them); skip connections from every encoder
level except the first, resized by bilinear interpolation where sizes differ; a VAE bottleneck that keeps
the 64x17x17 shape (two 3x3 convolutions give mean and log-variance, the kernel is not in the slides;
reparameterisation while training; KL term weighted by ``kl_weight``).

Chosen where the slides are silent or differ from us:
- The slides say "K=6 S=1" for the decoder but their shapes (17 -> 38 -> 80 -> 164) need stride 2: the
  shapes are taken as authoritative.
- Output: 2 channels (ab, 110 * tanh) instead of their 3; the final layer resizes 164 -> input size
  (bilinear) and applies a 3x3 convolution. Any input size works (odd ones included); inputs smaller
  than the encoder's minimum are padded (edge replication) and cropped back.
- Norm/activation: batch norm + LeakyReLU(0.2) in the encoder, batch norm + ReLU in the decoder.
- Loss: ``recon`` (L1 default, or MSE) on ab / 110 plus ``kl_weight`` x KL (mean over latent elements),
  with kl_weight 1e-3; Adam 2e-4, batch 32 (none of these are in the slides).
- Inference uses the posterior mean (deterministic) unless ``sample=True`` (config or forward argument).

Preset ``cpu`` (suite color-classic): half the slides' widths (32-64-64, latent 32, decoder 32), batch 32 of
64 px crops, rate 1e-3 (at batch 8 the loss fell less). The runs: docs/tuning.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import Recipe, Stage


@dataclass
class UnetVaeConfig(zoo.TrainConfig):
    RENAMED = {"dec_width": "dec_features"}  # zoo 0.1 names

    widths: tuple[int, ...] = zoo.bounded((64, 64, 64), min=1)  # encoder widths (one per level); decoder mirrors them
    latent: int = zoo.bounded(64, min=1)  # channels of the VAE latent
    enc_kernel: int = zoo.bounded(4, min=1)
    dec_kernel: int = zoo.bounded(6, min=1)
    dec_features: int = zoo.bounded(64, min=1)  # width of every decoder layer (the slides: 64)
    ab_scale: float = 110.0
    sample: bool = False  # sample the latent at inference instead of using its mean
    # -- loss --
    recon: str = "l1"  # "l1" or "mse"
    kl_weight: float = 1e-3
    # -- training --
    batch_size: int = 32
    patch_size: int = 150
    lr: float = 2e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class UnetVae(zoo.Colorizer):
    def __init__(self, cfg: UnetVaeConfig):
        super().__init__()
        if cfg.recon not in ("l1", "mse"):
            raise ValueError(f"recon must be 'l1' or 'mse', got {cfg.recon!r}")
        self.cfg = cfg
        n = len(cfg.widths)
        self.encoders = nn.ModuleList()
        cin = 1
        for c in cfg.widths:
            self.encoders.append(nn.Sequential(
                nn.Conv2d(cin, c, cfg.enc_kernel, stride=2), nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)))
            cin = c
        self.to_mu = nn.Conv2d(cin, cfg.latent, 3, padding=1)
        self.to_logvar = nn.Conv2d(cin, cfg.latent, 3, padding=1)
        # Decoder i takes the previous output concatenated with encoder level n-1-i, except the last one.
        self.decoders = nn.ModuleList()
        prev = cfg.latent
        for i in range(n):
            skip = cfg.widths[n - 1 - i] if i < n - 1 else 0
            self.decoders.append(nn.Sequential(
                nn.ConvTranspose2d(prev + skip, cfg.dec_features, cfg.dec_kernel, stride=2),
                nn.BatchNorm2d(cfg.dec_features), nn.ReLU(inplace=True)))
            prev = cfg.dec_features
        self.final = nn.Conv2d(prev, 2, 3, padding=1)
        self.min_size = self._min_size()

    def _min_size(self) -> int:
        s = 1  # the deepest level must be at least 1x1: invert out = (in - k) // 2 + 1
        for _ in self.cfg.widths:
            s = (s - 1) * 2 + self.cfg.enc_kernel
        return s

    def encode(self, l: torch.Tensor):
        """(mean, log-variance, skip features) of the latent for L in [0, 100]."""
        x = l / 50.0 - 1.0
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        return self.to_mu(x), self.to_logvar(x), skips

    def decode(self, z: torch.Tensor, skips, size) -> torch.Tensor:
        x, n = z, len(self.decoders)
        for i, dec in enumerate(self.decoders):
            if i < n - 1:
                s = skips[n - 1 - i]
                x = torch.cat((x, _resize(s, x.shape[-2:])), dim=1)
            x = dec(x)
        x = self.final(_resize(x, size))
        return self.cfg.ab_scale * torch.tanh(x)

    def _pad(self, l: torch.Tensor):
        h, w = l.shape[-2:]
        ph, pw = max(0, self.min_size - h), max(0, self.min_size - w)
        if ph or pw:
            l = F.pad(l, (0, pw, 0, ph), mode="replicate")
        return l, (h, w)

    def forward_train(self, l: torch.Tensor):
        """(ab, mean, log-variance) with the latent sampled by the reparameterisation trick."""
        x, (h, w) = self._pad(l)
        mu, logvar, skips = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        ab = self.decode(z, skips, x.shape[-2:])
        return ab[..., :h, :w], mu, logvar

    def forward(self, l: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        sample = self.cfg.sample if sample is None else sample
        x, (h, w) = self._pad(l)
        mu, logvar, skips = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode(z, skips, x.shape[-2:])[..., :h, :w]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), averaged over all latent elements."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class UnetVaeRecipe(Recipe):
    stages = (Stage("main"),)

    def start_stage(self, stage: Stage) -> None:
        self.optimizers["main"] = self.adam(self.model.parameters())

    def losses(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(recon + kl_weight * kl, recon, kl)`` on ``batch``, with the latent sampled as in training."""
        cfg = self.config
        s = cfg.ab_scale
        with self.autocast():
            ab, mu, logvar = self.model.forward_train(batch["l"])
            pred, target = ab.float() / s, batch["ab"] / s
            recon = F.l1_loss(pred, target) if cfg.recon == "l1" else F.mse_loss(pred, target)
            kl = kl_divergence(mu.float(), logvar.float())
        return recon + cfg.kl_weight * kl, recon, kl

    def training_step(self, batch, stage, step):
        loss, recon, kl = self.losses(batch)
        total = self.backward_step(loss, "main")
        return {"loss": total, self.config.recon: self.loggable(recon), "kl": self.loggable(kl)}

    def validation_losses(self, batch, stage):
        loss, recon, kl = self.losses(batch)
        return {"loss": loss, self.config.recon: recon, "kl": kl}

    def reference_losses(self, batch, stage):
        # ab = 0 (the gray baseline) with the latent at its prior, so KL = 0 and the loss is the reconstruction
        target = batch["ab"] / self.config.ab_scale
        recon = target.abs().mean() if self.config.recon == "l1" else target.pow(2).mean()
        return {"loss": recon, self.config.recon: recon}


ENTRY = zoo.ModelEntry(
    name="unet_vae",
    build=UnetVae,
    config=UnetVaeConfig,
    summary="U-Net / VAE hybrid: strided-conv encoder, VAE bottleneck, decoder with interpolated skips "
            "(seed 003)",
    reference="seed 003 'Enhancing Image Colorization Architectures' (U-Net-VAE hybrid; docs/sources.md); "
              "VAE: Kingma & Welling, arXiv:1312.6114; U-Net: Ronneberger et al., arXiv:1505.04597",
    presets={
        "paper": {},
        # The slides' second good model: 4 encoder layers K=3 S=2, VAE, 4 decoder layers K=3 S=2.
        "k3_depth4": {"widths": (64, 64, 64, 64), "enc_kernel": 3, "dec_kernel": 3},
        "tiny": {"widths": (16, 32, 32), "latent": 16, "dec_features": 16, "batch_size": 8, "patch_size": 48,
                 "lr": 2e-3},
        # Sized for a CPU hour (suite color-classic): half the slides' widths, 64 px crops, a faster rate.
        "cpu": {"widths": (32, 64, 64), "latent": 32, "dec_features": 32, "batch_size": 32, "patch_size": 64,
                "lr": 1e-3},
    },
    recipe=UnetVaeRecipe,
)
