"""zoo: a plugin-based model zoo and benchmark suite for colorization and super-resolution.

Using models from Python (:mod:`zoo.api`)::

    import zoo

    zoo.list_models("edsr*")                                   # ['edsr', 'edsr_dqe']
    sr = zoo.create_model("edsr", preset="tiny", scale=4)      # an nn.Module
    sr = zoo.create_model("edsr", checkpoint="hf-hub:ORG/REPO")  # with its weights
    psnr = zoo.create_metric("psnr", shave=4)                  # update/compute, or psnr(pred, target)
    table = zoo.bench(suite="smoke", srs=["edsr"])             # the results as a pandas DataFrame

Everything a plugin author needs is importable from here too, one way for the built-in plugins and any
other: the hook marker, the two entries a hook registers, the config bases of the contract
(:mod:`zoo.contract`) and ``bounded``, the model interfaces, the training recipe classes, the metric
interface, and the toolkit the built-in models are made of (colour conversion, the ab bins of
classification colorizers, GAN and VGG feature losses, pretrained weight files, MATLAB bicubic resizing,
the loop's split of steps into stages, the conformance checks). ``tests/test_exports.py`` holds the
built-in plugins to it.

Names are imported on first use (PEP 562), so ``import zoo`` -- and with it the CLI's ``--help`` and shell
completion -- does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "bounded": "zoo.config",
    "SRConfig": "zoo.contract", "TrainConfig": "zoo.contract",
    "MetricEntry": "zoo.entries", "ModelEntry": "zoo.entries",
    "ZooError": "zoo.errors",
    "hookimpl": "zoo.hookspecs",
    "Metric": "zoo.metrics.base", "MetricInfo": "zoo.metrics.base", "MetricResult": "zoo.metrics.base",
    "MetricUnavailable": "zoo.metrics.base",
    "Colorizer": "zoo.models", "SuperResolver": "zoo.models",
    "Recipe": "zoo.recipe", "Stage": "zoo.recipe", "TrainContext": "zoo.recipe", "linear_decay": "zoo.recipe",
    "Registry": "zoo.registry", "get_registry": "zoo.registry", "load_registry": "zoo.registry",
    "list_models": "zoo.api", "create_model": "zoo.api", "load": "zoo.api", "create_metric": "zoo.api",
    # the module zoo.bench, callable as zoo.api.bench: one object whether or not zoo.bench was imported
    "bench": "zoo.bench",
    # -- the toolkit of the built-in models, for plugins
    "rgb_to_lab": "zoo.color", "lab_to_rgb": "zoo.color", "split_lab": "zoo.color", "join_lab": "zoo.color",
    "rgb_to_y": "zoo.color", "gray_to_rgb": "zoo.color",
    "ab_gamut_bins": "zoo.abbins", "nearest_bin": "zoo.abbins", "soft_encode": "zoo.abbins",
    "soft_encode_sparse": "zoo.abbins", "bin_prior": "zoo.abbins", "rebalance_weights": "zoo.abbins",
    "annealed_mean": "zoo.abbins",
    "gan_loss": "zoo.losses", "VGGFeatureLoss": "zoo.losses", "VGG19_LAYERS": "zoo.losses",
    "IMAGENET_MEAN": "zoo.losses", "IMAGENET_STD": "zoo.losses",
    # a pretrained weight file (declare yours on ModelEntry.weights), the two the built-in models use, and
    # its tensors (None when missing): load_state_dict(VGG16)
    "WeightFile": "zoo.weights", "VGG16": "zoo.weights", "VGG19": "zoo.weights", "load_state_dict": "zoo.weights",
    "imresize": "zoo.resize",
    "stage_plan": "zoo.recipe",  # (stage, first step, end step) of each stage, as the loop runs them
    "check_model": "zoo.testing", "assert_conforms": "zoo.testing",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        # Submodules (zoo.datasets, zoo.checkpoint, ...) still import as usual; this only covers attributes.
        raise AttributeError(f"module 'zoo' has no attribute '{name}'")
    imported = importlib.import_module(module)
    value = imported if module == f"zoo.{name}" else getattr(imported, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
