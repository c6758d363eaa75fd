"""``pix2pix``: conditional GAN colorization (Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017, arXiv:1611.07004), as used by seeds 002 and 004
(docs/sources.md).

Generator: a U-Net. Encoder C64-C128-C256-C512-C512-C512-C512-C512 (4x4 convolutions, stride 2, batch
norm except on the first layer, LeakyReLU 0.2); decoder CD512-CD512-CD512-C512-C256-C128-C64 (4x4
transposed convolutions, stride 2, batch norm, ReLU, dropout 0.5 in the first three), each concatenated
with the mirrored encoder layer (skip connections), then a last transposed convolution to the output
channels and tanh. Discriminator: the 70x70 PatchGAN C64-C128-C256-C512 (4x4 convolutions, strides 2, 2,
2, 1, batch norm except on C64, LeakyReLU 0.2) and a 1-channel 4x4 convolution, on concat(L, ab).
Objective: GAN + 100 x L1, Adam lr 2e-4, betas (0.5, 0.999); the discriminator's loss is halved (the
paper "divides the objective by 2 while optimizing D"); D and G alternate one step each.

Faithful: everything above. ``paper`` is the paper's 256x256 network (8 downsamplings to 1x1) with the
vanilla (cross-entropy) GAN loss and batch size 4 (the paper's ImageNet colorization run).

Adapted / chosen:
- Depth follows the input size (config ``depth``): the paper's 256 px net has 8 levels; seed 002 trains
  on 64x64 COCO images, so preset ``coco64`` uses 6 levels (64 -> 1), batch 16 and the least-squares GAN
  loss that seed 002 describes ("a mean square error loss"); seed 004 is the paper's setting at 256 px.
  Inputs whose sides are not multiples of 2^depth are reflect-padded (edge-replicated when too small to
  reflect) and the output is cropped back; a training patch that is not such a multiple is refused when
  the training is planned (:meth:`Pix2PixRecipe.check_config`), since it would train mostly on padding.
- The innermost encoder layer has no batch norm (as in the authors' released code: at 1x1 spatial size
  and small batches batch norm would zero the bottleneck).
- Normalisation: L / 50 - 1 and ab / 110 (``ab_scale``), both in [-1, 1]; the generator's tanh output is
  multiplied by 110; the L1 term is computed on the normalised ab (as the paper's L1 on [-1, 1] images).
- Inference is deterministic: eval mode, batch norm running statistics, no dropout (the paper keeps
  dropout and batch statistics at test time).
- The discriminator lives in ``recipe.aux["discriminator"]`` so training checkpoints keep it; the
  inference checkpoint holds the generator only.

Preset ``cpu`` (suite color-classic): the tiny widths (16), 6 levels for 64 px crops, batch 8, rate 1e-3, no
dropout, and L1 weight 1000 instead of the paper's 100. Why: at this scale and weight 100 the GAN term puts
colour in the wrong places, by an amount that depends on chance (seed, even the CPU's rounding); at 1000 the
seeds tried beat gray on every colour metric. Dropout at the paper's rate kept the L1 term from moving. The
runs behind these choices are in docs/tuning.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import Recipe, Stage, ZooError, gan_loss

GAN_MODES = ("vanilla", "lsgan")


@dataclass
class Pix2PixConfig(zoo.TrainConfig):
    depth: int = zoo.bounded(8, min=1)  # downsamplings of the U-Net (8 for 256 px, 6 for 64 px)
    features: int = zoo.bounded(64, min=1)  # generator base width (C64); widths double up to 8 x features
    d_features: int = zoo.bounded(64, min=1)  # discriminator base width
    d_layers: int = 3  # stride-2 layers of the PatchGAN (3 -> 70x70 receptive field)
    dropout: float = 0.5
    dropout_layers: int = 3  # first decoder layers with dropout (CD512 x 3)
    ab_scale: float = 110.0
    # -- loss --
    gan_mode: str = "vanilla"  # "vanilla" (BCE on logits) or "lsgan" (least squares)
    l1_weight: float = 100.0
    # -- training --
    batch_size: int = 4
    patch_size: int = 256
    lr: float = 2e-4
    # share of the steps at the full rate; the rate then falls linearly towards zero (1 = constant)
    lr_decay_from: float = zoo.bounded(1.0, min=0.0, max=1.0)
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999


class UnetGenerator(zoo.Colorizer):
    """pix2pix U-Net: L (B,1,H,W) in [0, 100] -> ab (B,2,H,W)."""

    def __init__(self, cfg: Pix2PixConfig):
        super().__init__()
        if cfg.depth < 1:
            raise ValueError(f"depth must be >= 1, got {cfg.depth}")
        if cfg.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {cfg.gan_mode!r}")
        self.cfg = cfg
        d = cfg.depth
        ch = [cfg.features * min(2**i, 8) for i in range(d)]
        self.down = nn.ModuleList()
        cin = 1
        for i, c in enumerate(ch):
            norm = 0 < i < d - 1  # none on the first layer (paper) nor the innermost (released code)
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(cin, c, 4, stride=2, padding=1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(c))
            self.down.append(nn.Sequential(*layers))
            cin = c
        self.up = nn.ModuleList()
        for j in range(d - 1):
            cin = ch[d - 1] if j == 0 else 2 * ch[d - 1 - j]
            cout = ch[d - 2 - j]
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                      nn.BatchNorm2d(cout)]
            if j < cfg.dropout_layers and cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            self.up.append(nn.Sequential(*layers))
        cin = ch[0] if d == 1 else 2 * ch[0]
        self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, 2, 4, stride=2, padding=1), nn.Tanh()))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.cfg.depth
        ph, pw = (-h) % m, (-w) % m
        if not (ph or pw):
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward_normalised(self, l: torch.Tensor) -> torch.Tensor:
        """Generator output in [-1, 1] (ab / ab_scale), same size as ``l``."""
        h, w = l.shape[-2:]
        x = self._pad(l / 50.0 - 1.0)
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        n = len(self.up)
        for j, up in enumerate(self.up):
            if j > 0:
                x = torch.cat((x, skips[n - 1 - j]), dim=1)
            x = up(x)
        return x[..., :h, :w]

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        return self.cfg.ab_scale * self.forward_normalised(l)


class PatchDiscriminator(nn.Module):
    """PatchGAN on concat(L, ab) (normalised): C64-C128-C256-C512 + 1-channel conv; 70x70 with 3 layers."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            cout = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, cout, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2, True)]
            c = cout
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def receptive_field(n_layers: int = 3) -> int:
        rf = 1
        for stride in [1, 1] + [2] * n_layers:  # from the output backwards: two stride-1 convs, then stride 2
            rf = (rf - 1) * stride + 4
        return rf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _init_normal_(module: nn.Module) -> None:
    # pix2pix initialisation: N(0, 0.02) weights, BN scales N(1, 0.02).
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: Pix2PixConfig) -> UnetGenerator:
    g = UnetGenerator(cfg)
    _init_normal_(g)
    return g


class Pix2PixRecipe(Recipe):
    """One discriminator step, then one generator step, per batch."""

    stages = (Stage("main"),)

    def __init__(self, model, config, ctx):
        super().__init__(model, config, ctx)
        d = PatchDiscriminator(3, config.d_features, config.d_layers)
        _init_normal_(d)
        self.aux["discriminator"] = d.to(ctx.device)

    @classmethod
    def check_config(cls, config) -> None:
        """Training patches must be multiples of 2^depth: the U-Net halves them ``depth`` times, and a smaller
        patch is padded up to 2^depth, so a 64 px patch in the 8-level net is 16x the work, mostly padding."""
        m = 2**config.depth
        if config.patch_size % m:
            fits = max((d for d in range(1, config.depth) if config.patch_size % 2**d == 0), default=None)
            hint = f"set depth = {fits} for {config.patch_size} px patches, or" if fits else "set"
            raise ZooError(f"pix2pix: patch_size {config.patch_size} does not fit depth {config.depth} (the U-Net "
                           f"halves a patch {config.depth} times, so it takes multiples of {m} px and pads the "
                           f"rest): {hint} patch_size to a multiple of {m}")

    @property
    def discriminator(self) -> PatchDiscriminator:
        return self.aux["discriminator"]

    def start_stage(self, stage: Stage) -> None:
        cfg = self.config
        self.optimizers["d"] = self.adam(self.discriminator.parameters())
        self.optimizers["g"] = self.adam(self.model.parameters())
        for name, opt in self.optimizers.items():
            self.schedulers[name] = zoo.linear_decay(opt, self.stage_steps(stage), cfg.lr_decay_from)

    def training_step(self, batch, stage, step):
        cfg, g, d = self.config, self.model, self.discriminator
        l_n = batch["l"] / 50.0 - 1.0
        ab_n = batch["ab"] / cfg.ab_scale
        d.train()
        # Discriminator: real (L, ab) pairs -> 1, generated -> 0; loss halved as in the paper.
        d.requires_grad_(True)
        with self.autocast():
            fake = g.forward_normalised(batch["l"])
            pred_fake = d(torch.cat((l_n, fake.detach()), dim=1)).float()
            pred_real = d(torch.cat((l_n, ab_n), dim=1)).float()
            loss_d = 0.5 * (gan_loss(pred_fake, False, cfg.gan_mode) + gan_loss(pred_real, True, cfg.gan_mode))
        d_value = self.backward_step(loss_d, "d")
        # Generator: fool the (now fixed) discriminator + L1 to the ground truth.
        d.requires_grad_(False)
        try:
            with self.autocast():
                pred_fake = d(torch.cat((l_n, fake), dim=1)).float()
                loss_gan = gan_loss(pred_fake, True, cfg.gan_mode)
                loss_l1 = F.l1_loss(fake.float(), ab_n)
                loss_g = loss_gan + cfg.l1_weight * loss_l1
            g_value = self.backward_step(loss_g, "g")
        finally:
            d.requires_grad_(True)
        return {"l1": self.loggable(loss_l1), "g_gan": self.loggable(loss_gan), "g": g_value, "d": d_value}

    def validation_losses(self, batch, stage):
        # The L1 term only: the GAN terms measure the generator against a discriminator that keeps moving.
        with self.autocast():
            fake = self.model.forward_normalised(batch["l"])
        return {"l1": F.l1_loss(fake.float(), batch["ab"] / self.config.ab_scale)}

    def reference_losses(self, batch, stage):
        return {"l1": (batch["ab"] / self.config.ab_scale).abs().mean()}  # ab = 0, the gray baseline


ENTRY = zoo.ModelEntry(
    name="pix2pix",
    build=build_generator,
    config=Pix2PixConfig,
    summary="pix2pix cGAN: U-Net generator, 70x70 PatchGAN on (L, ab), GAN + 100 x L1 (seeds 002, 004)",
    reference="Isola, Zhu, Zhou & Efros, Image-to-Image Translation with Conditional Adversarial Networks, "
              "CVPR 2017, arXiv:1611.07004; preset coco64: seed 002 (docs/sources.md)",
    presets={
        "paper": {},
        # Seed 002: 64x64 COCO images, batch 16, least-squares discriminator loss; 6 levels for 64 px.
        "coco64": {"depth": 6, "patch_size": 64, "batch_size": 16, "gan_mode": "lsgan"},
        "tiny": {"depth": 5, "features": 16, "d_features": 16, "patch_size": 32, "batch_size": 4},
        # Sized for a CPU hour (suite color-classic): tiny widths, 6 levels for 64 px crops, a 5x rate and no
        # dropout (at this budget its noise kept the L1 term from falling).
        "cpu": {"depth": 6, "features": 16, "d_features": 16, "patch_size": 64, "batch_size": 8, "lr": 1e-3,
                "dropout": 0.0, "l1_weight": 1000.0},
    },
    recipe=Pix2PixRecipe,
)
