"""A complete third-party zoo plugin in one file: ESPCN (Shi et al., CVPR 2016), and one metric.

ESPCN extracts features at low resolution and upsamples once at the end with a sub-pixel convolution
(pixel shuffle). It has about 20k parameters at x2, small enough to train on a CPU in a minute.

The metric, ``mae``, is the mean absolute error in 8-bit levels, to show the ``register_metrics`` hook.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo


@dataclass
class EspcnConfig(zoo.SRConfig, zoo.TrainConfig):
    """The paper's settings. zoo.SRConfig gives ``scale``; zoo.TrainConfig the fields the training loop reads."""

    scale: int = 2
    patch_size: int = 17  # the paper's 17x17 LR sub-images
    batch_size: int = 16  # not given in the paper
    features: int = zoo.bounded(64, min=1)  # width of the first layer; the second has half
    lr: float = 1e-3


class Espcn(zoo.SuperResolver):
    def __init__(self, cfg: EspcnConfig):
        super().__init__(cfg.scale)
        f = cfg.features
        self.body = nn.Sequential(
            nn.Conv2d(3, f, 5, padding=2), nn.Tanh(),
            nn.Conv2d(f, f // 2, 3, padding=1), nn.Tanh(),
            nn.Conv2d(f // 2, 3 * cfg.scale**2, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        # Predict the residual over bicubic so that an untrained model starts from the baseline.
        base = F.interpolate(rgb, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.shuffle(self.body(rgb))


class EspcnRecipe(zoo.Recipe):
    """MSE loss and Adam, as in the paper (which used plain SGD with a decaying rate)."""

    stages = (zoo.Stage("main"),)

    def start_stage(self, stage):
        # Adam at the config's lr and betas (zoo.TrainConfig's vocabulary); one optimiser is named "main"
        self.optimizers["main"] = self.adam(self.model.parameters())

    def training_step(self, batch, stage, step):
        with self.autocast():
            loss = F.mse_loss(self.model(batch["lr"]), batch["hr"])
        return {"mse": self.backward_step(loss, "main")}


ENTRY = zoo.ModelEntry(
    name="espcn",
    build=Espcn,
    config=EspcnConfig,
    summary="ESPCN: three convolutions and a sub-pixel upsampler (example third-party plugin)",
    reference="Shi et al., CVPR 2016, arXiv:1609.05158",
    presets={"paper": {}, "tiny": {"features": 16}},
    recipe=EspcnRecipe,
)


@zoo.hookimpl
def register_sr_models(register):
    register(ENTRY)


class MeanAbsoluteError(zoo.Metric):
    """Mean absolute difference of the 8-bit RGB images, ``shave`` pixels removed from each border."""

    def __init__(self, shave: int = 0):
        self.shave = int(shave)
        self.info = zoo.MetricInfo(name="mae", higher_is_better=False, unit="levels",
                                   convention=f"RGB 0-255, shave={self.shave}, uint8",
                                   description="mean absolute error (example plugin metric)")
        self.reset()

    def reset(self):
        self.values = []

    def update(self, pred, target):
        s = self.shave
        a, b = (torch.round(x.clamp(0, 1) * 255).double() for x in (pred, target))
        if s:
            a, b = a[..., s:-s, s:-s], b[..., s:-s, s:-s]
        self.values += (a - b).abs().mean(dim=(1, 2, 3)).tolist()

    def compute(self):
        value = sum(self.values) / len(self.values) if self.values else None
        return zoo.MetricResult(info=self.info, value=value, n=len(self.values), per_image=list(self.values))


@zoo.hookimpl
def register_metrics(register):
    # build(**params) receives the evaluation's settings (shave, device, cache_dir); its keyword parameters are
    # its own settings, and zoo.create_metric refuses any other
    register(zoo.MetricEntry(name="mae", build=lambda *, shave=0, **params: MeanAbsoluteError(shave),
                             higher_is_better=False, unit="levels", summary="mean absolute error in 8-bit levels"))
