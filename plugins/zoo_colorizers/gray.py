"""``gray``: the reference colorizer that predicts no colour at all (ab = 0).

Every colorization paper reports it: it is what an output scores when it keeps the input's lightness and
adds nothing. Any colorizer worth training must beat it on the ab-sensitive metrics.
"""

from dataclasses import dataclass

import torch

import zoo


@dataclass
class GrayConfig:
    pass


class Gray(zoo.Colorizer):
    def forward(self, l: torch.Tensor) -> torch.Tensor:
        return l.new_zeros((l.shape[0], 2, *l.shape[2:]))


ENTRY = zoo.ModelEntry(
    name="gray",
    build=lambda cfg: Gray(),
    config=GrayConfig,
    summary="Reference baseline: keeps L, predicts ab = 0 (a grayscale image)",
    reference="baseline",
)
