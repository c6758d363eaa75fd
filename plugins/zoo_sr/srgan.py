"""``srgan``: SRResNet generator trained as SRGAN (Ledig et al., CVPR 2017, arXiv:1609.04802).

Generator (the paper's Fig. 4), which is the registered model::

    x (LR, [0, 1]) -> conv9x9(3->64) + PReLU                                  = h
      -> 16 x [conv3x3 - BN - PReLU - conv3x3 - BN, + input]
      -> conv3x3 - BN, + h                                                  (global skip)
      -> log2(s) x [conv3x3(64->256) - PixelShuffle(2) - PReLU]              (x3: one conv(64->576), shuffle 3)
      -> conv9x9(64->3) -> output activation

Discriminator (Fig. 4, kept in the recipe's ``aux`` so checkpoints of a run restore it)::

    conv3x3(3->64) - LeakyReLU(0.2)
      -> 7 x [conv3x3 - BN - LeakyReLU(0.2)], channels 64,128,128,256,256,512,512, strides 2,1,2,1,2,1,2
      -> AdaptiveAvgPool(6x6) -> dense 1024 - LeakyReLU(0.2) -> dense 1 (a logit; the sigmoid is in the loss)

Training (Sec. 3.2 and 4.2), recipe stages:
- ``srresnet``: the generator alone, pixel MSE, Adam (0.9, 0.999) at 1e-4 (the paper: 10^6 updates);
- ``gan``: the generator starts from the SRResNet weights; generator loss
  ``VGG54 content + 1e-3 x (-log D(G(x)))``, discriminator loss binary cross-entropy on real and generated
  HR; Adam at 1e-4 for the first half of the stage, 1e-5 for the second (the paper: 10^5 + 10^5 updates).
  So SRResNet gets 10^6 / 1.2x10^6 = 5/6 of the steps (``srresnet_fraction``).

Faithful: block structure, widths, PReLU, sub-pixel upsampling, 9x9 first and last convolutions,
discriminator layout, loss weights, optimiser and schedule, 96x96 HR patches (24x24 LR at x4), batch 16;
LR input in [0, 1]; HR images in [-1, 1] for the pixel MSE and for the discriminator's input, as in the paper.

Adapted, and why:
- output: the paper trains against HR images in [-1, 1]; its figure shows no output activation, and
  implementations commonly end in tanh, which matches that range. The zoo's SuperResolver returns RGB in
  [0, 1], so ``output="tanh"`` returns ``(tanh(y) + 1) / 2``: the same function, rescaled. The pixel MSE is computed
  on ``2x - 1`` of both images, so its scale is the paper's.
- content loss: the paper's VGG54 is the feature map of the 4th convolution, after its ReLU, before the 5th
  max-pool of VGG19 (``relu5_4``); features are divided by 12.75 as in the paper (``vgg_rescale``; it says
  this equals a factor of about 0.006 on the loss). That factor was set for the paper's own VGG19 and input
  scaling; ours is torchvision's, fed ImageNet-normalised [0, 1] inputs, so the balance between the content
  and the adversarial terms need not be exactly the paper's.
  When the VGG19 weights are missing from the torch hub cache, the content loss falls back to the pixel MSE
  (the paper's "SRGAN-MSE" variant), and the run records ``vgg19 weights: missing -> content loss = pixel MSE``.
- discriminator head: the paper feeds fixed 96x96 images and flattens the 6x6x512 map into the dense layer.
  We average-pool to 6x6 first (``d_pool``), which is the identity at 96x96 input and lets the recipe accept
  other patch sizes; the dense layers keep the paper's size.
- PReLU: one shared slope per PReLU layer (PyTorch's default; the paper does not say per-channel or shared).
- scale 3 (one PixelShuffle(3)) and scale 2 are extensions; the paper is x4 only.
- ``batch_norm=False`` drops the BN layers (as ESRGAN and BasicSR's MSRResNet do); ``output="linear"``
  returns the last convolution as is. ``paper`` keeps BN and tanh; ``tiny`` uses both changes (see ``TINY``).

Preset ``seed_course``: the SRGAN of the seed course report, seed 002 (cGAN colorization + SRGAN, Sec. 3.2;
see docs/sources.md#seed-002), where it differs from the paper: 64 -> 256 px (LR patch 64), Adam 2e-4 with
betas (0.5, 0.999), residual blocks with ReLU instead of PReLU, a sigmoid output, no MSE pre-training stage
and no learning-rate drop (neither is mentioned), VGG19 perceptual MSE without the 1/12.75 rescaling (none
is mentioned), 1e-3 adversarial weight. The layer for its VGG19 loss is not named; we keep VGG54.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import VGG19, VGG19_LAYERS, Recipe, Stage, VGGFeatureLoss, gan_loss
from zoo_sr.edsr import bicubic_like

CONTENT_FALLBACK_NOTE = "vgg19 weights: missing -> content loss = pixel MSE"


@dataclass
class SrganConfig(zoo.SRConfig, zoo.TrainConfig):
    """Defaults: the paper's SRGAN at x4 (preset ``paper``)."""

    scale: int = 4
    # -- generator
    blocks: int = 16
    features: int = zoo.bounded(64, min=1)
    io_kernel: int = zoo.bounded(9, min=1)  # kernel of the first and the last convolution (the paper's 9x9)
    block_act: Literal["prelu", "relu"] = "prelu"  # activation inside the residual blocks
    batch_norm: bool = True  # BN in the residual blocks and after the body (the paper's); False drops it
    output: Literal["tanh", "sigmoid", "linear"] = "tanh"  # tanh: (tanh + 1) / 2, the paper's [-1, 1] in [0, 1]
    # -- discriminator
    # channels of the first conv; the blocks use 1, 2, 2, 4, 4, 8, 8 times that
    d_features: int = zoo.bounded(64, min=1)
    # adaptive average pool to d_pool x d_pool before the dense layers (96 px in -> 6 x 6)
    d_pool: int = zoo.bounded(6, min=1)
    d_dense: int = zoo.bounded(1024, min=1)
    # -- training
    patch_size: int = 24  # LR patch side (96 HR at x4)
    batch_size: int = 16
    lr: float = 1e-4  # generator and discriminator
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    srresnet_fraction: float = 5 / 6  # share of steps for MSE pre-training (paper: 10^6 of 1.2x10^6 updates)
    gan_lr_decay_at: float = 0.5  # in the gan stage, multiply lr by gan_lr_gamma after this share of it (0: never)
    gan_lr_gamma: float = 0.1
    adv_weight: float = 1e-3
    content_layer: str = "relu5_4"  # VGG54
    vgg_rescale: float = 1 / 12.75  # VGG feature maps are multiplied by this before the MSE


def _act(kind: str) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU()
    if kind == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation '{kind}' (prelu, relu)")


def _norm(n_feats: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(n_feats) if batch_norm else nn.Identity()


class SrResBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the input."""

    def __init__(self, n_feats: int, act: str = "prelu", batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), _norm(n_feats, batch_norm), _act(act),
            nn.Conv2d(n_feats, n_feats, 3, padding=1), _norm(n_feats, batch_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _upsampling(scale: int, n_feats: int) -> nn.Sequential:
    """Per factor: conv3x3 to r^2 F channels - PixelShuffle(r) - PReLU; x2 stages for powers of two."""
    if scale == 3:
        factors = [3]
    elif scale >= 2 and scale & (scale - 1) == 0:
        factors = [2] * int(math.log2(scale))
    else:
        raise ValueError(f"SRResNet upsamples by 2, 3, 4 or 8, not {scale}")
    layers: list[nn.Module] = []
    for r in factors:
        layers += [nn.Conv2d(n_feats, r * r * n_feats, 3, padding=1), nn.PixelShuffle(r), nn.PReLU()]
    return nn.Sequential(*layers)


class SrResNet(zoo.SuperResolver):
    """SRGAN's generator: RGB [0, 1] (B, 3, h, w) -> RGB (B, 3, s h, s w), in [0, 1] unless ``output=linear``."""

    def __init__(self, cfg: SrganConfig):
        super().__init__(cfg.scale)
        f = cfg.features
        if cfg.output not in ("tanh", "sigmoid", "linear"):
            raise ValueError(f"unknown output '{cfg.output}' (tanh, sigmoid, linear)")
        self.output = cfg.output
        k = cfg.io_kernel
        if k < 1 or k % 2 == 0:
            raise ValueError(f"io_kernel must be odd and positive, got {k}")
        self.head = nn.Sequential(nn.Conv2d(3, f, k, padding=k // 2), nn.PReLU())
        self.body = nn.Sequential(*[SrResBlock(f, cfg.block_act, cfg.batch_norm) for _ in range(cfg.blocks)])
        self.body_end = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), _norm(f, cfg.batch_norm))
        self.upsample = _upsampling(cfg.scale, f)
        self.tail = nn.Conv2d(f, 3, k, padding=k // 2)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        h = self.head(rgb)
        x = h + self.body_end(self.body(h))
        y = self.tail(self.upsample(x))
        if self.output == "tanh":
            return (torch.tanh(y) + 1) / 2
        if self.output == "sigmoid":
            return torch.sigmoid(y)
        return y


class Discriminator(nn.Module):
    """SRGAN's discriminator on HR images in [-1, 1]; returns one logit per image, shape (B,)."""

    def __init__(self, cfg: SrganConfig):
        super().__init__()
        d = cfg.d_features
        layers: list[nn.Module] = [nn.Conv2d(3, d, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        cin = d
        for mult, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)):
            layers += [nn.Conv2d(cin, mult * d, 3, stride=stride, padding=1), nn.BatchNorm2d(mult * d),
                       nn.LeakyReLU(0.2, inplace=True)]
            cin = mult * d
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(cfg.d_pool)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * cfg.d_pool * cfg.d_pool, cfg.d_dense), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.d_dense, 1),
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(img))).squeeze(1)


def pixel_mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """MSE on images mapped to [-1, 1], the range the paper computes it in."""
    return F.mse_loss(sr * 2 - 1, hr * 2 - 1)


class SrganRecipe(Recipe):
    """Stage ``srresnet`` (pixel MSE) then stage ``gan`` (VGG54 content + 1e-3 adversarial; D with BCE)."""

    stages = (Stage("srresnet", 5 / 6), Stage("gan", 1 / 6))

    def __init__(self, model, config, ctx):
        super().__init__(model, config, ctx)
        f = min(max(float(config.srresnet_fraction), 0.0), 1.0)
        self.stages = (Stage("srresnet", f), Stage("gan", 1.0 - f))
        self.aux["discriminator"] = Discriminator(config).to(ctx.device)
        self.content: VGGFeatureLoss | None = None
        if config.content_layer not in VGG19_LAYERS:
            raise ValueError(f"content_layer '{config.content_layer}' is not a VGG19 layer (e.g. relu5_4)")
        if f < 1.0:
            self.content = VGGFeatureLoss.from_hub(config.content_layer, rescale=config.vgg_rescale)
            if self.content is None:
                ctx.note(CONTENT_FALLBACK_NOTE)
            else:
                self.content = self.content.to(ctx.device)

    def start_stage(self, stage):
        self.optimizers.clear()
        self.schedulers.clear()
        self.optimizers["g"] = self.adam(self.model.parameters())
        if stage.name == "srresnet":
            return
        if stage.name != "gan":
            raise ValueError(f"srgan has stages 'srresnet' and 'gan', not '{stage.name}'")
        self.optimizers["d"] = self.adam(self.aux["discriminator"].parameters())
        at = self.config.gan_lr_decay_at
        if 0 < at < 1:
            stage_steps = max(1, self.stage_steps(stage))
            period = max(1, round(stage_steps * at))
            for name in ("g", "d"):  # one drop, as in the paper (not a repeating step schedule)
                self.schedulers[name] = torch.optim.lr_scheduler.MultiStepLR(
                    self.optimizers[name], milestones=[period], gamma=self.config.gan_lr_gamma)


    def training_step(self, batch, stage, step):
        lr, hr = batch["lr"], batch["hr"]
        if stage.name == "srresnet":
            with self.autocast():
                loss = pixel_mse(self.model(lr), hr)
            return {"mse": self.backward_step(loss, "g")}

        disc = self.aux["discriminator"]
        disc.train()
        with self.autocast():
            sr = self.model(lr)
            # Discriminator: real HR -> 1, generated -> 0 (inputs in [-1, 1]).
            d_loss = (gan_loss(disc(hr * 2 - 1), True)
                      + gan_loss(disc(sr.detach() * 2 - 1), False))
        d_value = self.backward_step(d_loss, "d")

        disc.requires_grad_(False)
        try:
            with self.autocast():
                content = self.content(sr.float(), hr) if self.content is not None else pixel_mse(sr, hr)
                adversarial = gan_loss(disc(sr * 2 - 1), True)  # -log D(G(x))
                g_loss = content + self.config.adv_weight * adversarial
            g_value = self.backward_step(g_loss, "g")
        finally:
            disc.requires_grad_(True)
        return {"g": g_value, "content": self.loggable(content), "adv": self.loggable(adversarial),
                "d": d_value}

    def validation_losses(self, batch, stage):
        with self.autocast():
            return self._generator_losses(stage, self.model(batch["lr"]), batch["hr"])

    def reference_losses(self, batch, stage):
        return self._generator_losses(stage, bicubic_like(batch["lr"], batch["hr"]), batch["hr"])

    def _generator_losses(self, stage, sr, hr):
        # What the generator's stage minimises against the ground truth (the GAN terms need the moving critic).
        if stage.name == "srresnet":
            return {"mse": pixel_mse(sr, hr)}
        return {"content": self.content(sr.float(), hr) if self.content is not None else pixel_mse(sr, hr)}


SEED_COURSE = {
    "patch_size": 64,
    "lr": 2e-4,
    "adam_beta1": 0.5,
    "block_act": "relu",
    "output": "sigmoid",
    "srresnet_fraction": 0.0,
    "gan_lr_decay_at": 0.0,
    "vgg_rescale": 1.0,
}

# CPU-sized, for the default suite: each departure from the paper (3x3 ends, no batch norm, linear output, wider
# patches) raised Y-PSNR at x2 after 1500 steps on the sample photos (benchmark/perf/NOTES.md#srgan-tiny).
TINY = {
    "blocks": 4,
    "features": 32,
    "io_kernel": 3,
    "batch_norm": False,
    "output": "linear",
    "d_features": 8,
    "d_pool": 3,
    "d_dense": 64,
    "patch_size": 24,
    "batch_size": 8,
    "lr": 1e-3,
}

ENTRY = zoo.ModelEntry(
    name="srgan",
    build=SrResNet,
    config=SrganConfig,
    summary="SRGAN: SRResNet generator (MSE pre-training) then VGG54 content + adversarial training",
    reference="Ledig et al., CVPR 2017, arXiv:1609.04802; preset seed_course: seed 002, course report "
              "(cGAN colorization + SRGAN; docs/sources.md)",
    presets={"paper": {}, "seed_course": SEED_COURSE, "tiny": TINY},
    recipe=SrganRecipe,
    weights=(VGG19,),
)
