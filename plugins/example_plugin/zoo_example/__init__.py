"""A complete third-party zoo plugin in one file: ESPCN (Shi et al., CVPR 2016).

ESPCN extracts features at low resolution and upsamples once at the end with a sub-pixel convolution
(pixel shuffle). It has about 20k parameters at x2, small enough to train on a CPU in a minute.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo.recipe import Recipe, Stage


@dataclass
class EspcnConfig:
    scale: int = 2
    features: int = 64  # width of the first layer; the second has half
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


class EspcnRecipe(Recipe):
    """MSE loss and Adam, as in the paper (which used plain SGD with a decaying rate)."""

    stages = (Stage("main"),)

    def start_stage(self, stage):
        self.optimizers["g"] = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def training_step(self, batch, stage, step):
        with self.autocast():
            loss = F.mse_loss(self.model(batch["lr"]), batch["hr"])
        return {"mse": self.backward_step(loss, "g")}


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
