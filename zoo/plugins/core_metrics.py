"""The core metrics, registered through the ``register_metrics`` hook exactly as a plugin's would be.

Registration imports nothing heavy: each metric's module (and torch, lpips, pytorch-fid) is imported when
the metric is first built.
"""

from __future__ import annotations

import importlib
import inspect

from zoo.plugins.entries import MetricEntry
from zoo.plugins.hookspecs import hookimpl
from zoo.plugins.metric_interface import _FACTORIES, MetricInfo

# name -> (module, higher is better, unit, ranked, summary)
_BUILTIN = {
    "psnr": ("zoo.metrics.pixel", True, "dB", True, "PSNR on BT.601 Y (16-235), the SR tables' convention"),
    "ssim": ("zoo.metrics.pixel", True, "", True, "SSIM on BT.601 Y, 11x11 Gaussian window (Wang et al. 2004)"),
    "psnr_rgb": ("zoo.metrics.pixel", True, "dB", True, "PSNR on the three RGB channels"),
    "ssim_rgb": ("zoo.metrics.pixel", True, "", True, "SSIM averaged over the RGB channels"),
    "lpips": ("zoo.metrics.lpips", False, "", True, "LPIPS distance with AlexNet features (Zhang et al. 2018)"),
    "lpips_vgg": ("zoo.metrics.lpips", False, "", True, "LPIPS distance with VGG16 features"),
    "fid": ("zoo.metrics.fid", False, "", True, "Fréchet Inception Distance to the targets (pytorch-fid)"),
    "kid": ("zoo.metrics.fid", False, "", True, "Kernel Inception Distance to the targets (unbiased)"),
    "colorfulness": ("zoo.metrics.colorization", True, "", False, "Hasler-Süsstrunk colourfulness of the outputs"),
    "colorfulness_gt": ("zoo.metrics.colorization", True, "", False,
                        "Hasler-Süsstrunk colourfulness of the ground truth"),
    "colorfulness_gap": ("zoo.metrics.colorization", False, "", True,
                         "|colourfulness(output) - colourfulness(ground truth)| per image"),
    "auc_raw": ("zoo.metrics.colorization", True, "%", True,
                "AuC of the ab error curve, thresholds 0-150, all pixels (Zhang et al. 2016)"),
    "auc_rebal": ("zoo.metrics.colorization", True, "%", True,
                  "AuC of the ab error curve, each colour class weighted equally (Zhang et al. 2016)"),
    "deltae2000": ("zoo.metrics.colorization", False, "ΔE00", True, "mean CIEDE2000 difference to the ground truth"),
}


def declared_info(name: str, *, convention: str, description: str = "") -> MetricInfo:
    """A core metric's :class:`MetricInfo`: direction, unit and ranking as this table declares them (their one
    home), with the convention and description its instance knows."""
    _, higher, unit, ranked, _ = _BUILTIN[name]
    return MetricInfo(name, higher_is_better=higher, unit=unit, convention=convention, description=description,
                      ranked=ranked)


class _Lazy:
    """``build(**params)`` that imports the metric's module on first use."""

    # Reading the signature imports the module (torch): the registry leaves it to the build, and the core
    # factories' signatures are held to the contract by tests/test_plugin_contract.py.
    signature_checked_when_built = True

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _factory(self):
        importlib.import_module(self.module)
        return _FACTORIES[self.name]

    def __call__(self, **params):
        return self._factory()(self.name, **params)

    @property
    def __signature__(self) -> inspect.Signature:
        # The settings the metric takes (zoo.create_metric checks them), without its leading name argument.
        sig = inspect.signature(self._factory())
        return sig.replace(parameters=list(sig.parameters.values())[1:])


@hookimpl
def register_metrics(register):
    for name, (module, higher, unit, ranked, summary) in _BUILTIN.items():
        register(MetricEntry(name=name, build=_Lazy(module, name), higher_is_better=higher, summary=summary,
                             unit=unit, ranked=ranked))
