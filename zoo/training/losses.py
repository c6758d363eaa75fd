"""Losses shared by several models' recipes (the recipes themselves live beside each model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.store.weights import VGG19, load_state_dict


def gan_loss(logits: torch.Tensor, target_is_real: bool, kind: str = "vanilla") -> torch.Tensor:
    """Adversarial loss on discriminator outputs.

    ``vanilla``: binary cross-entropy on logits (Goodfellow et al. 2014; pix2pix, SRGAN).
    ``lsgan``: least squares towards 1 (real) or 0 (fake) (Mao et al. 2017).
    """
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN loss '{kind}' (vanilla, lsgan)")


# -- VGG19 feature ("content" / "perceptual") loss ----------------------------------------------------------

# torchvision's VGG19 layout (configuration "E"): channels per conv, "M" for a 2x2 max-pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")


def _vgg19_layer_names() -> dict[str, int]:
    """``{"conv1_1": 0, "relu1_1": 1, ..., "relu5_4": 35, "pool5": 36}``: names of ``vgg19().features[i]``."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in _VGG19_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


VGG19_LAYERS = _vgg19_layer_names()
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(last: str) -> torch.nn.Sequential:
    """``torchvision.models.vgg19(weights=None).features[: VGG19_LAYERS[last] + 1]``, built without the
    (large) classifier. Layer indices, and so state-dict keys, are exactly torchvision's."""
    from torch import nn

    if last not in VGG19_LAYERS:
        raise ValueError(f"unknown VGG19 layer '{last}' (e.g. relu2_2, relu5_4; all: {', '.join(VGG19_LAYERS)})")
    stop = VGG19_LAYERS[last]
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
        if len(layers) > stop:
            break
    return nn.Sequential(*layers[: stop + 1])


class VGGFeatureLoss(torch.nn.Module):
    """Mean squared distance between VGG19 feature maps of two RGB images in [0, 1].

    ``layer`` names the feature map, e.g. ``relu5_4`` (SRGAN's "VGG54": the 4th convolution after its ReLU,
    before the 5th max-pool; Ledig et al. 2017) or ``relu2_2`` ("VGG22"). Images are normalised with the
    ImageNet mean/std torchvision's weights expect. Features are multiplied by ``rescale`` before the distance
    (SRGAN uses 1/12.75). The network is frozen and always in eval mode; gradients flow to the first input only.

    Build it from the real ImageNet weights with :meth:`from_hub`, which returns ``None`` when the weight file
    is missing and could not be downloaded (the caller decides what to do and says so; a random VGG is never
    used silently).
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], layer: str = "relu5_4", rescale: float = 1.0):
        super().__init__()
        self.layer = layer
        self.rescale = float(rescale)
        self.features = vgg19_features(layer)
        n = len(self.features)
        own = {}
        for key, value in state_dict.items():
            if key.startswith("features."):
                index = int(key.split(".")[1])
                if index < n:
                    own[key[len("features."):]] = value
        self.features.load_state_dict(own, strict=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @classmethod
    def from_hub(cls, layer: str = "relu5_4", rescale: float = 1.0) -> VGGFeatureLoss | None:
        """From ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (downloaded, verified, on first use unless
        offline), or ``None`` when it stays missing. A file that is not plain tensors raises
        :class:`zoo.store.weights.WeightsRefused` (one line): a run never trains on a file it could not trust."""

        state = load_state_dict(VGG19)
        return None if state is None else cls(state, layer=layer, rescale=rescale)

    def train(self, mode: bool = True):  # frozen feature extractor: never leaves eval mode
        return super().train(False)

    def feature_map(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features((rgb - self.mean) / self.std) * self.rescale

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.feature_map(hr)
        return F.mse_loss(self.feature_map(sr), target)
