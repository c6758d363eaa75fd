"""LPIPS (Zhang et al. 2018) with the real ``lpips`` package, its trunk filled from a verified weight file.

The lpips network is built empty and filled from tensors zoo read itself (:mod:`zoo.metrics.pretrained`):
the AlexNet or VGG16 trunk from the hub cache, the calibrated linear layers from the file that ships inside
the lpips package.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from zoo.metrics.perimage import check_pair, per_image_result
from zoo.metrics.pretrained import HASH_DIGITS, downloads_refused, load_into, metric_device, read_tensors
from zoo.plugins.core_metrics import declared_info
from zoo.plugins.metric_interface import Metric, MetricResult, MetricUnavailable, metric_factory
from zoo.store.weights import ALEXNET, VGG16, file_sha256

LPIPS_BACKBONES = {"alex": (ALEXNET, "AlexNet"), "vgg": (VGG16, "VGG16"), "vgg16": (VGG16, "VGG16")}
LPIPS_VERSION = "0.1"


def lpips_linear_weights(net: str = "alex") -> Path:
    """The calibrated linear-layer file that ships inside the lpips package (``lpips/weights/v0.1/alex.pth``)."""
    import lpips  # here, not at the top: lpips brings torchvision, which only LPIPS needs

    name = "vgg" if net in ("vgg", "vgg16") else net
    return Path(lpips.__file__).resolve().parent / "weights" / f"v{LPIPS_VERSION}" / f"{name}.pth"


class LPIPSMetric(Metric):
    """LPIPS (Zhang et al. 2018) with the real ``lpips`` package: inputs scaled to [-1, 1], per image."""

    def __init__(self, name: str = "lpips", *, device=None, net: str = "alex"):
        if net not in LPIPS_BACKBONES:
            raise MetricUnavailable(f"lpips: unknown net '{net}' (use one of: alex, vgg)")
        backbone, label = LPIPS_BACKBONES[net]
        backbone_path, state = read_tensors(backbone)
        lin_path = lpips_linear_weights(net)
        lin_name = f"lpips/weights/v{LPIPS_VERSION}/{lin_path.name}"
        if not lin_path.is_file():
            raise MetricUnavailable(f"lpips linear-layer weights missing: {lin_name} is not in the installed "
                                    f"lpips package (reinstall it: pip install --force-reinstall lpips)")
        lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
        import lpips

        # Built empty (pnet_rand: no torchvision download; pretrained=False: no torch.load of its own), then
        # filled from the tensors read above.
        with downloads_refused(backbone):
            model = lpips.LPIPS(net="vgg" if net == "vgg16" else net, version=LPIPS_VERSION, pretrained=False,
                                pnet_rand=True, verbose=False)
        # lpips slices torchvision's ``features``: slice k holds features[i] under the name "i".
        trunk = {}
        for key in model.net.state_dict():
            _, index, rest = key.split(".", 2)
            source = f"features.{index}.{rest}"
            if source not in state:
                raise MetricUnavailable(f"{backbone.filename} does not fit torchvision's {label}: no {source}")
            trunk[key] = state[source]
        load_into(model.net, trunk, backbone, f"torchvision's {label}")
        lin_keys = {k for k in model.state_dict() if re.match(r"lin\d+\.", k)}  # (lins.N.* are the same tensors)
        if lin_keys != set(lin_state):
            raise MetricUnavailable(f"lpips linear-layer file {lin_name} does not match net '{net}' "
                                    f"(reinstall lpips)")
        try:
            model.load_state_dict(lin_state, strict=False)  # the trunk is in already; these are the rest
        except RuntimeError:
            raise MetricUnavailable(f"lpips linear-layer file {lin_name} does not match net '{net}' "
                                    f"(reinstall lpips)") from None
        self.device = metric_device(device)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.net = net
        self.info = declared_info(
            name, convention=f"{label}, lpips v{LPIPS_VERSION}, [-1,1]",
            description="Learned Perceptual Image Patch Similarity (Zhang et al. 2018), lpips package; "
                        "distance to the ground truth, lower is better")
        self.weights = {backbone.filename: file_sha256(backbone_path)[:HASH_DIGITS],
                        lin_name: file_sha256(lin_path)[:HASH_DIGITS]}
        self.reset()

    def reset(self) -> None:
        self._values: list[float] = []

    @torch.no_grad()
    def distances(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS of a batch, (B,) float on CPU."""
        check_pair(pred, target)
        x = pred.detach().to(self.device, torch.float32).clamp(0, 1) * 2 - 1
        y = target.detach().to(self.device, torch.float32).clamp(0, 1) * 2 - 1
        return self.model(x, y).reshape(-1).float().cpu()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self._values.extend(float(v) for v in self.distances(pred, target))

    def compute(self) -> MetricResult:
        return per_image_result(self.info, self._values, self.weights)


@metric_factory("lpips")
def _lpips_factory(name, *, device=None, net="alex", **ignored) -> Metric:
    return LPIPSMetric(name, device=device, net=net)


@metric_factory("lpips_vgg")
def _lpips_vgg_factory(name, *, device=None, **ignored) -> Metric:
    return LPIPSMetric(name, device=device, net="vgg")
