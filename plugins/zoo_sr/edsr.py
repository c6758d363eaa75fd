"""``edsr``: Enhanced Deep Residual Network (Lim, Son, Kim, Nah, Lee; CVPR Workshops 2017, arXiv:1707.02921).

Architecture, read next to Sec. 3 and Fig. 2-3 of the paper::

    x -> normalise -> head conv3x3(3->F)
      -> body: B x ResBlock(conv3x3 - ReLU - conv3x3, output x res_scale, + input), then conv3x3
      -> + head output (global skip over the body)
      -> tail: sub-pixel upsampler (x2 / x3: conv3x3(F -> s^2 F) + PixelShuffle(s); x4 / x8: x2 stages)
               [-> extra conv3x3 + ReLU layers at HR: the seed report's addition, 0 in the paper]
               -> conv3x3(-> 3)
      -> denormalise

Faithful to the paper:
- residual blocks without batch normalisation and without a ReLU after the sum; residual scaling
  (``res_scale``; 1 for the baseline, 0.1 for the 32-block / 256-feature EDSR);
- global skip over the body, which ends with a convolution;
- DIV2K RGB mean shift (0.4488, 0.4371, 0.4040) for images in [0, 1] (the official code's ``MeanShift`` with
  ``rgb_range=1``), kept as fixed buffers, so they are not parameters;
- the ``paper`` preset is the EDSR *baseline* (16 blocks, 64 features, res_scale 1): 1,369,859 parameters at
  x2 (the mean shift holds none); L1 loss; Adam (0.9, 0.999, eps 1e-8), learning rate 1e-4 halved
  every 2x10^5 updates; 48x48 LR patches, batch 16.

Adapted:
- x3 and x4 models train from scratch here (the paper initialises them from the trained x2 model);
- no geometric self-ensemble (EDSR+) at test time;
- images stay in [0, 1] (the official code uses [0, 255]; ReLU networks are positively homogeneous, so a
  [0, 255] EDSR equals ours with every bias divided by 255);
- an optional VGG19 content term (``content_weight``; 0 in ``paper``), for the seed report's variant below.

Preset ``super_colorization``: the modified EDSR of the seed report, seed 000 ("Super Colorization: a single
pipeline for image colorization and super resolution", Sec. III.2; see docs/sources.md#seed-000):
- 24 residual blocks (they tried 24 and 32 and kept 24), 64 features, x2 (64 -> 128 px);
- input normalised with the ImageNet mean and standard deviation, output de-normalised, instead of the
  DIV2K mean shift;
- "we increased the number of conv layers after the upsampling layer" (their Fig. 6, not in the text): how
  many and how wide is not written. The report gives about 3M parameters for this EDSR and about 2.8M for
  DQE, which it describes as the same kind of network without the upsampler. The two differ by about the
  upsampler's 0.15M parameters, so the extra HR convolutions hold about 1.0M parameters. We use 7 conv3x3 +
  ReLU layers, 128 wide (``post_convs=7``, ``post_features=128``): 2,921,795 parameters here (report: about 3M),
  and 2,774,083 for the matching DQE (report: about 2.8M). The ReLUs are our choice: stacked convolutions
  without them would collapse into one linear map;
- loss ``L = |y - y'| + (vgg(y) - vgg(y'))^2`` (mean absolute error plus the mean squared distance of VGG19
  features), unweighted as written: ``content_weight=1``. "The 5th layer of the VGG19 network": their code is
  tf.keras, and in Keras's VGG19 ``layers[5]`` (counting the input layer as 0) is ``block2_conv2``, a
  convolution with a built-in ReLU, i.e. the map torchvision calls ``features[8]``: ``content_layer="relu2_2"``
  (SRGAN's "VGG22"). Keras's VGG19 expects caffe-style inputs (0..255 minus the mean) and the report does not
  say how it fed it; ours sees ImageNet-normalised [0, 1] inputs, so the balance between the two terms is
  not the report's (its loss "dropped from 400K to 10", so its VGG term was far larger than L1);
- Adam, 1e-4 halved every 2x10^5 steps, as in the report; batch 16 (not given in the report).

When the VGG19 weights are missing from the torch hub cache the content term is switched off and the run
records ``vgg19 weights: missing -> content loss off``; a randomly initialised VGG is never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import IMAGENET_MEAN, IMAGENET_STD, VGG19, VGG19_LAYERS, Recipe, Stage, VGGFeatureLoss

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
CONTENT_MISSING_NOTE = "vgg19 weights: missing -> content loss off"


@dataclass
class EdsrConfig(zoo.SRConfig, zoo.TrainConfig):
    """Defaults: the EDSR baseline at x2 as trained in the paper (preset ``paper``)."""
    RENAMED = {"post_feats": "post_features"}  # zoo 0.1 names

    scale: int = 2
    # -- architecture
    blocks: int = 16  # residual blocks (B)
    features: int = zoo.bounded(64, min=1)  # feature channels (F)
    res_scale: float = 1.0  # residual scaling inside each block
    norm: Literal["div2k_mean", "imagenet", "none"] = "div2k_mean"
    post_convs: int = 0  # extra conv3x3 + ReLU layers after the upsampler (seed report's modification)
    post_features: int = zoo.bounded(64, min=1)  # width of those layers
    # -- training
    patch_size: int = 48  # LR patch side
    batch_size: int = 16
    lr: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    lr_decay_steps: int = zoo.bounded(200_000, min=1)  # StepLR period, in optimiser steps
    lr_decay_gamma: float = 0.5
    content_weight: float = 0.0  # weight of the VGG19 feature MSE added to L1 (0: pure L1)
    content_layer: str = "relu2_2"


# -- building blocks, shared with edsr_dqe -------------------------------------------------------------------


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class ResBlock(nn.Module):
    """conv - ReLU - conv, scaled by ``res_scale``, plus the input. No batch norm, no ReLU after the sum."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.res_scale != 1.0:  # the baseline's scale of 1 would cost a pass over the features each way
            y = y * self.res_scale
        # in place: the conv's backward does not need its output, and a fresh sum costs an allocation
        return y.add_(x)


def residual_body(n_blocks: int, n_feats: int, res_scale: float) -> nn.Sequential:
    """``n_blocks`` residual blocks and a closing conv (the global skip is added by the caller)."""
    return nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_blocks)], conv3x3(n_feats, n_feats))


def post_layers(n_in: int, n_layers: int, width: int) -> tuple[list[nn.Module], int]:
    """``n_layers`` x (conv3x3 + ReLU) from ``n_in`` channels to ``width``; returns the layers and the width out."""
    layers: list[nn.Module] = []
    for _ in range(n_layers):
        layers += [conv3x3(n_in, width), nn.ReLU(inplace=True)]
        n_in = width
    return layers, n_in


class Upsampler(nn.Sequential):
    """Sub-pixel convolution (Shi et al. 2016): conv to s^2 F channels, then PixelShuffle(s).

    x2 and x3 use one stage; powers of two above 2 (x4, x8) use x2 stages, as in the paper.
    """

    def __init__(self, scale: int, n_feats: int):
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        elif scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"EDSR upsamples by 2, 3, 4 or 8, not {scale}")
        super().__init__(*layers)


class RgbNorm(nn.Module):
    """Input normalisation and its inverse: ``div2k_mean`` (x - mean), ``imagenet`` ((x - mean) / std) or none.

    Constants are non-persistent buffers: they follow the module's device and are not parameters.
    """

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("div2k_mean", "imagenet", "none"):
            raise ValueError(f"unknown normalisation '{kind}' (div2k_mean, imagenet, none)")
        self.kind = kind
        mean = {"div2k_mean": DIV2K_MEAN, "imagenet": IMAGENET_MEAN, "none": (0.0, 0.0, 0.0)}[kind]
        std = IMAGENET_STD if kind == "imagenet" else (1.0, 1.0, 1.0)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.kind == "none" else (x - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.kind == "none" else x * self.std + self.mean


class Edsr(zoo.SuperResolver):
    """EDSR. Module names follow the official code (``head``, ``body``, ``tail``)."""

    def __init__(self, cfg: EdsrConfig):
        super().__init__(cfg.scale)
        f = cfg.features
        self.norm = RgbNorm(cfg.norm)
        self.head = nn.Sequential(conv3x3(3, f))
        self.body = residual_body(cfg.blocks, f, cfg.res_scale)
        post, width = post_layers(f, cfg.post_convs, cfg.post_features)
        self.tail = nn.Sequential(Upsampler(cfg.scale, f), *post, conv3x3(width, 3))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.head(self.norm.normalise(rgb))
        x = x + self.body(x)
        return self.norm.denormalise(self.tail(x))


# -- training ------------------------------------------------------------------------------------------------


def content_loss_or_note(cfg, ctx, device) -> VGGFeatureLoss | None:
    """The VGG19 content loss when ``cfg.content_weight > 0`` and the real weights are present.

    Missing weights switch the term off, and the run says so (never a random VGG).
    """
    if cfg.content_layer not in VGG19_LAYERS:
        raise ValueError(f"content_layer '{cfg.content_layer}' is not a VGG19 layer (e.g. relu2_2, relu5_4)")
    if cfg.content_weight <= 0:
        return None
    loss = VGGFeatureLoss.from_hub(cfg.content_layer)
    if loss is None:
        ctx.note(CONTENT_MISSING_NOTE)
        return None
    return loss.to(device)


def adam_with_step_decay(params, cfg) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.lr_decay_steps), gamma=cfg.lr_decay_gamma)
    return opt, sched


def bicubic_like(lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """``lr`` upscaled to ``hr``'s size by the ``bicubic`` baseline's resize (float, not rounded): the SR
    recipes' reference answer."""
    return zoo.imresize(lr.float(), size=tuple(hr.shape[-2:])).clamp(0, 1)


def l1_and_content(sr: torch.Tensor, hr: torch.Tensor, content: VGGFeatureLoss | None, weight: float):
    """``L1 + weight * VGG feature MSE`` (the content term only when ``content`` is available)."""
    l1 = F.l1_loss(sr, hr)
    logs = {"l1": l1}
    loss = l1
    if content is not None:
        c = content(sr.float(), hr.float())
        logs["content"] = c
        loss = loss + weight * c
    return loss, logs


class EdsrRecipe(Recipe):
    """One stage: L1 (+ optional VGG19 content term), Adam, learning rate halved every ``lr_decay_steps``."""

    stages = (Stage("main"),)

    def __init__(self, model, config, ctx):
        super().__init__(model, config, ctx)
        self.content = content_loss_or_note(config, ctx, ctx.device)

    def start_stage(self, stage):
        self.optimizers["main"], self.schedulers["main"] = adam_with_step_decay(self.model.parameters(), self.config)

    def training_step(self, batch, stage, step):
        with self.autocast():
            sr = self.model(batch["lr"])
            loss, logs = l1_and_content(sr, batch["hr"], self.content, self.config.content_weight)
        total = self.backward_step(loss, "main")
        return {"loss": total, **{k: self.loggable(v) for k, v in logs.items()}}

    def validation_losses(self, batch, stage):
        with self.autocast():
            loss, logs = l1_and_content(self.model(batch["lr"]), batch["hr"], self.content,
                                        self.config.content_weight)
        return {"loss": loss, **logs}

    def reference_losses(self, batch, stage):
        loss, logs = l1_and_content(bicubic_like(batch["lr"], batch["hr"]), batch["hr"], self.content,
                                    self.config.content_weight)
        return {"loss": loss, **logs}


SUPER_COLORIZATION = {
    "blocks": 24,
    "norm": "imagenet",
    "post_convs": 7,
    "post_features": 128,
    "patch_size": 64,
    "content_weight": 1.0,
    "content_layer": "relu2_2",
}

# Sized for the SR half of a CPU-hour colorization suite (color-classic): 8 blocks of 32 features.
CPU = {
    "blocks": 8,
    "features": 32,
    "patch_size": 32,
    "batch_size": 8,
    "lr": 5e-4,
    "lr_decay_steps": 1000,
}

TINY = {
    "blocks": 4,
    "features": 16,
    "patch_size": 24,
    "batch_size": 8,
    "lr": 1e-3,
    "lr_decay_steps": 1000,
}

ENTRY = zoo.ModelEntry(
    name="edsr",
    build=Edsr,
    config=EdsrConfig,
    summary="EDSR: residual blocks without batch norm, global skip, sub-pixel upsampler (L1 loss)",
    reference="Lim et al., CVPR Workshops 2017, arXiv:1707.02921; preset super_colorization: seed 000 "
              "'Super Colorization' (modified EDSR; docs/sources.md)",
    presets={"paper": {}, "super_colorization": SUPER_COLORIZATION, "cpu": CPU, "tiny": TINY},
    recipe=EdsrRecipe,
    weights=(VGG19,),
)
