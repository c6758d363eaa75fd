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
(:mod:`zoo.plugins.contract`) and ``bounded``, the model interfaces, the training recipe classes, the metric
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

# module -> the public names it defines
_MODULES = {
    "zoo.api": ["list_models", "create_model", "load", "create_metric", "bench"],
    "zoo.errors": ["ZooError"],
    # -- for plugins: the hook marker, the entries a hook registers, the config bases of the contract, the model
    # and metric interfaces, the training recipe classes, the registry and the conformance checks
    "zoo.plugins.hookspecs": ["hookimpl"],
    "zoo.plugins.entries": ["MetricEntry", "ModelEntry"],
    "zoo.plugins.contract": ["SRConfig", "TrainConfig"],
    "zoo.plugins.config": ["bounded"],
    "zoo.plugins.interfaces": ["Colorizer", "SuperResolver"],
    "zoo.plugins.registry": ["Registry", "get_registry", "load_registry"],
    "zoo.harness.conformance": ["check_model", "assert_conforms"],
    "zoo.plugins.metric_interface": ["Metric", "MetricInfo", "MetricResult", "MetricUnavailable"],
    # stage_plan: (stage, first step, end step) of each stage, as the loop runs them
    "zoo.plugins.recipe": ["Recipe", "Stage", "TrainContext", "linear_decay", "stage_plan"],
    # -- the toolkit of the built-in models
    "zoo.data.color": ["rgb_to_lab", "lab_to_rgb", "split_lab", "join_lab", "rgb_to_y", "gray_to_rgb"],
    "zoo.data.abbins": ["ab_gamut_bins", "nearest_bin", "soft_encode", "soft_encode_sparse", "bin_prior",
                        "rebalance_weights", "annealed_mean"],
    "zoo.data.resize": ["imresize"],
    "zoo.training.losses": ["gan_loss", "VGGFeatureLoss", "VGG19_LAYERS", "IMAGENET_MEAN", "IMAGENET_STD"],
    # a pretrained weight file (declare yours on ModelEntry.weights), the two the built-in models use, and
    # its tensors (None when missing): load_state_dict(VGG16)
    "zoo.store.weights": ["WeightFile", "VGG16", "VGG19", "load_state_dict"],
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        # Submodules (zoo.data.datasets, ...) still import as usual; this only covers attributes.
        raise AttributeError(f"module 'zoo' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
