"""The Python API: find, build, load and score models, and run the benchmark, from a script or notebook.

    import zoo

    zoo.list_models("edsr*", task="sr")                         # ['edsr', 'edsr_dqe']
    sr = zoo.create_model("edsr", preset="tiny", scale=4)       # a fresh model
    sr = zoo.create_model("edsr", checkpoint="hf-hub:ORG/REPO") # the same, with trained weights
    sr = zoo.load("runs/train/edsr-1234/model.safetensors")    # whatever model a checkpoint holds
    psnr = zoo.create_metric("psnr", shave=4)
    table = zoo.bench(suite="smoke", colorizers=["gray"], srs=["edsr"])

Each function is importable as ``zoo.<name>``; these are the functions the README documents.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError
from zoo.plugins.config import config_to_dict
from zoo.plugins.registry import get_registry
from zoo.store.locate import locate

# Function-level imports: what imports torch (checkpoints, metrics, the bench) is imported by the function that
# needs it: the names are zoo's attributes, and `import zoo` stays light.


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Names of the registered models, sorted; ``pattern`` is a glob (``"edsr*"``), ``task`` is ``"sr"`` or
    ``"colorizer"``."""
    return [e.name for e in get_registry().entries(pattern, task)]


def create_model(name: str, preset: str | None = None, scale: int | None = None, checkpoint: Any = None,
                 **overrides):
    """Build the registered model ``name`` as a ``torch.nn.Module`` in eval mode (``.train()`` to train it).

    Without ``checkpoint`` the weights are freshly initialised, and the config is the model's defaults
    (its paper configuration), then ``preset`` (``"tiny"``, ...), then ``scale`` (SR models) and
    ``overrides`` (config fields: ``blocks=8``).

    ``checkpoint`` loads trained weights: a ``.safetensors`` file (with its ``.json``), a training run
    folder, a bench run folder (the checkpoint it trained for ``name``, at ``scale`` if it trained several),
    or a Hub name ``hf-hub:ORG/REPO[@REVISION]`` (downloaded once into the Hugging Face cache; offline, a
    cached name still loads). The config then comes from the checkpoint: ``preset``, ``scale`` and
    ``overrides`` may only repeat it, and a checkpoint of another model is refused.

    ``model.zoo_meta`` holds what the model is: name, config and, for a checkpoint, its JSON.
    """
    registry = get_registry()
    entry = registry.get(name)
    if scale is not None:
        if entry.task != "sr":
            raise ZooError(f"'{name}' is a {entry.task}: scale applies to SR models")
        overrides["scale"] = scale
    wanted = entry.make_config(preset, overrides)  # also checks the preset and override names
    if checkpoint is None:
        model = entry.build(wanted).eval()
        model.zoo_meta = {"model": entry.name, "task": entry.task, "preset": preset,
                          "config": config_to_dict(wanted)}
        return model
    loaded = _load(checkpoint, registry, model=name, scale=scale)
    model, meta, have = loaded.model, loaded.model.zoo_meta, loaded.config
    if meta["model"] != entry.name:
        raise ZooError(f"checkpoint {checkpoint} holds a '{meta['model']}' model, not '{name}' "
                       f"(zoo.load(...) takes whatever model a checkpoint holds)")
    asked = set(overrides) | set(entry.presets.get(preset, {}) if preset else ())
    differ = [f"{k}={getattr(wanted, k)!r} (checkpoint: {getattr(have, k)!r})" for k in sorted(asked)
              if getattr(wanted, k) != getattr(have, k)]
    if differ:
        raise ZooError(f"checkpoint {checkpoint} was trained with another config than asked for: "
                       f"{'; '.join(differ)}. Its config comes with its weights: leave these out")
    return model


def load(path_or_hub_name, device: str = "cpu"):
    """The model a checkpoint holds, with its weights, as a ``torch.nn.Module`` in eval mode on ``device``.

    Takes what ``create_model(checkpoint=...)`` takes; a bench run folder must hold one trained model
    (else name it: ``zoo.create_model(name, checkpoint=run_dir)``). ``model.zoo_meta`` is the checkpoint's
    JSON (model name, config, training data fingerprint, metrics, versions).
    """
    return _load(path_or_hub_name, get_registry()).model.to(device)


def _load(spec, registry, model: str | None = None, scale: int | None = None):
    """The checkpoint `spec` names, loaded (model, meta, config), its model stamped with `zoo_meta`."""
    from zoo.store.checkpoint import load_checkpoint

    loaded = load_checkpoint(locate(spec, model=model, scale=scale), registry)
    loaded.model.zoo_meta = {**loaded.meta, "source": str(spec)}
    return loaded


def create_metric(name: str, **convention):
    """A registered metric (``zoo metrics`` lists them) as a :class:`zoo.metrics.module.MetricModule`.

    ``convention`` fixes how it scores: ``shave`` (border pixels ignored, = the scale in SR tables),
    ``device`` (where networks such as LPIPS run), ``cache_dir`` (FID/KID reference features), and the
    metric's own settings (``quantize``, ``net``, ...); a setting the metric does not have is refused.
    ``metric(pred, target)`` gives per-image scores; ``update``/``compute`` accumulate over batches;
    ``metric.info`` has the direction, unit and convention the boards show.
    """
    from zoo.metrics.module import MetricModule

    return MetricModule(name, **convention)


def bench(suite: str = "default", colorizers=None, srs=None, **options):
    """Run ``zoo bench`` from Python; the results as a pandas DataFrame, the rows the CLI writes to
    ``results.csv`` (one per model or pipeline, test set, scale and metric).

    ``colorizers`` / ``srs``: names or globs (default: the suite's); the reference baselines are always
    included, as in the CLI. ``options`` are the CLI's: ``scale``, ``data``, ``test`` (a folder or a list),
    ``preset``, ``steps``, ``seed``, ``order``, ``precision``, ``device``, ``out``, ``cache``, ``workers``,
    ``executor``, ``address``, ``gpus_per_job``, ``retrain`` (model names or ``"all"``: trained again even when
    cached), and ``log`` (a function given each progress line; default silent). ``df.attrs["run_dir"]`` is the
    run folder (leaderboard.md, samples, run.json). Failed jobs are rows with a ``failed`` reason, and a warning
    says how many.
    """
    from zoo.harness.bench import bench_table

    return bench_table(suite, colorizers, srs, **options)
