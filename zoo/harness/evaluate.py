"""Evaluation of a colorizer, an SR model, or the two as a pipeline, under the field's conventions.

Each test image (colour HR ground truth) is degraded once into the benchmark triple (HR cropped to a
multiple of the scale, colour LR by MATLAB-compatible bicubic, gray LR = its L channel). Then:

- SR alone:        colour LR            -> SR         -> compared with HR (shave = scale)
- colorizer alone: gray LR              -> colorizer  -> compared with colour LR (shave = 0)
- pipeline:        gray LR -> colorizer -> colour LR -> SR -> compared with HR (shave = scale)

Outputs are quantized to 8 bits before the pixel metrics, as published SR evaluations do.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.data.color import gray_to_rgb, join_lab, split_lab
from zoo.data.degrade import make_triple
from zoo.data.imageio import BadImageError, DataWarning
from zoo.errors import ZooError, one_line
from zoo.metrics import MetricResult, MetricUnavailable
from zoo.metrics.build import build_metric
from zoo.plugins.metric_interface import MetricInfo
from zoo.plugins.registry import get_registry
from zoo.store.checkpoint import load_checkpoint
from zoo.store.download import DOWNLOADED
from zoo.store.locate import locate, looks_like_checkpoint

DEFAULT_METRICS = ("psnr", "ssim")


@dataclass
class LoadedModel:
    """A model ready to run, and where it came from (recorded with every number)."""

    name: str
    task: str
    module: torch.nn.Module
    source: str  # "baseline" or a checkpoint path
    meta: dict[str, Any] = field(default_factory=dict)


def load_model(spec: str, task: str, *, scale: int, device: torch.device, registry=None) -> LoadedModel:
    """``spec`` is a registered model name (baselines run as they are) or a checkpoint: a ``.safetensors``
    file, a run folder or a Hub name ``hf-hub:ORG/REPO`` (:mod:`zoo.store.locate`)."""
    registry = registry or get_registry()
    if looks_like_checkpoint(spec):
        path = locate(spec)
        loaded = load_checkpoint(path, registry, device)
        if loaded.entry.task != task:
            raise ZooError(f"checkpoint {spec} is a {loaded.entry.task} model, not a {task} model")
        if task == "sr" and loaded.model.scale != scale:
            raise ZooError(f"checkpoint {spec} upscales x{loaded.model.scale}, but --scale is {scale}")
        return LoadedModel(loaded.entry.name, task, loaded.model, str(spec), loaded.meta)
    entry = registry.get(spec, task)
    if entry.trainable:
        raise ZooError(f"model '{spec}' has to be trained first: 'zoo train --model {spec} ...' writes a checkpoint "
                       f"to pass here instead of the name")
    overrides = {"scale": scale} if task == "sr" else {}
    module = entry.create(**overrides).to(device).eval()
    return LoadedModel(entry.name, task, module, "baseline", {"config": overrides})


@dataclass
class EvalReport:
    results: list[MetricResult]
    mode: str  # "sr", "colorizer" or "pipeline"
    dataset: str
    scale: int
    n_images: int
    skipped: list[str]
    seconds: float
    images_per_second: float | None  # None when the models took no measurable time
    models: dict[str, str]
    images: list[str] = field(default_factory=list)  # the scored images, in the order of per-image values

    def per_image(self, result: MetricResult) -> dict[str, float] | None:
        """``{image name: value}`` of a per-image metric (None for set metrics such as FID)."""
        values = result.per_image
        return dict(zip(self.images, values)) if values and len(values) == len(self.images) else None
    downloaded: list[dict[str, Any]] = field(default_factory=list)  # weight files fetched for this evaluation

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "dataset": self.dataset, "scale": self.scale, "n_images": self.n_images,
            "skipped": self.skipped, "seconds": round(self.seconds, 3),
            "images_per_second": None if self.images_per_second is None else round(self.images_per_second, 3),
            "models": self.models, "metrics": [{**r.to_dict(), "per_image": self.per_image(r)} for r in self.results],
            "downloaded": self.downloaded,
        }


def _declared_info(entry) -> MetricInfo:
    """What the registration says of a metric, for a column without a number."""
    return MetricInfo(name=entry.name, higher_is_better=entry.higher_is_better, unit=entry.unit, convention="",
                      ranked=entry.ranked)


def _metric_failure(entry, what: str, exc: BaseException | None = None) -> str:
    """One line naming the metric and its plugin: what broke, and the exception's own first line."""
    cause = f": {one_line(exc)}" if exc is not None else ""
    if isinstance(exc, TypeError) and "unexpected keyword argument" in str(exc):
        cause += " (end build()'s signature with **params: the evaluation passes shave, device, cache_dir)"
    return f"metric '{entry.name}' from '{entry.distribution}': {what}{cause}"


def _build_metrics(names: Iterable[str], shave: int, device: torch.device, params: dict[str, Any] | None = None,
                   registry=None):
    """The metrics built, and results for those that cannot run: unavailable here (missing weights), or
    failed (the metric's own bug, which costs only its column)."""
    registry = registry or get_registry()
    metrics, results = [], []
    for name in names:
        entry = registry.metric(name)
        try:
            metric = build_metric(name, registry=registry, shave=shave, device=device, **(params or {}))
            metrics.append(_Guarded(metric, entry))
        except MetricUnavailable as exc:
            results.append(MetricResult(info=_declared_info(entry), value=None, unavailable=str(exc)))
        except Exception as exc:
            results.append(MetricResult(info=_declared_info(entry), value=None,
                                        failed=_metric_failure(entry, "build() raised", exc)))
    return metrics, results


class _Guarded:
    """A built metric whose failures stay in its own column: the first exception in ``update`` or ``compute``,
    or a ``compute()`` that returns something other than a zoo.MetricResult, becomes its failed result."""

    def __init__(self, metric, entry):
        self.metric, self.entry, self.failed = metric, entry, None
        self.info = metric.info
        self.min_size = int(getattr(metric, "min_size", 1))
        self.accepts_grey_target = bool(getattr(metric, "accepts_grey_target", False))

    def update(self, pred, target) -> None:
        if self.failed is None:
            try:
                self.metric.update(pred, target)
            except Exception as exc:
                self.failed = _metric_failure(self.entry, "update() raised", exc)

    def compute(self, n: int) -> MetricResult:
        if self.failed is None:
            try:
                result = self.metric.compute()
            except MetricUnavailable as exc:
                return MetricResult(info=self.metric.info, value=None, n=n, unavailable=str(exc))
            except Exception as exc:
                self.failed = _metric_failure(self.entry, "compute() raised", exc)
            else:
                if isinstance(result, MetricResult) and isinstance(result.info, MetricInfo):
                    return result
                self.failed = _metric_failure(self.entry, f"compute() returned {type(result).__name__}, not a "
                                              "zoo.MetricResult (with its info)")
        return MetricResult(info=_declared_info(self.entry), value=None, n=n, failed=self.failed)


@torch.inference_mode()
def evaluate(*, dataset, scale: int, device: torch.device, colorizer: LoadedModel | None = None,
             sr: LoadedModel | None = None, metrics: Iterable[str] = DEFAULT_METRICS,
             order: str = "color-first", on_image=None, metric_params: dict[str, Any] | None = None,
             registry=None) -> EvalReport:
    """Score ``colorizer``, ``sr`` or both (the pipeline) on every usable image of ``dataset``.

    ``order``: ``color-first`` colorizes the gray LR image, then upscales it; ``sr-first`` upscales the gray
    LR image (as neutral RGB), then colorizes at HR, keeping the upscaled lightness.
    ``on_image(name, output, target, triple, intermediate)`` sees every image (for pictures).
    ``metric_params`` go to every metric factory (e.g. ``cache_dir`` for the FID/KID reference features).
    """
    if colorizer is None and sr is None:
        raise ZooError("nothing to evaluate: give a colorizer, an SR model or both")
    mode = "pipeline" if colorizer and sr else ("sr" if sr else "colorizer")
    shave = 0 if mode == "colorizer" else scale
    items = list(dataset.items())
    fetched_before = len(DOWNLOADED)  # metrics fetch missing weight files as they are built
    metric_objs, results = _build_metrics(list(metrics), shave, device, metric_params, registry)
    # the side an image must have where it is scored (HR, or LR for a colorizer alone), shave included
    need = max([m.min_size for m in metric_objs] + [1]) + 2 * shave
    needed_by = [m.info.name for m in metric_objs if m.min_size + 2 * shave == need]
    skipped: list[str] = []
    names: list[str] = []
    n, model_seconds = 0, 0.0
    for item in items:
        try:
            hr = item.load().unsqueeze(0).to(device)
        except BadImageError as exc:
            warnings.warn(str(exc), DataWarning, stacklevel=2)
            skipped.append(f"{item.name}: {exc}")
            continue
        if mode != "sr" and getattr(item, "grey", False):
            # A greyscale ground truth holds no colour to compare with: a colorizer would score infinity.
            reason = f"{item.name}: greyscale file, no colour ground truth (scored in SR evaluations only)"
            warnings.warn(reason, DataWarning, stacklevel=2)
            skipped.append(reason)
            continue
        h, w = hr.shape[-2:]
        scored = min(h // scale, w // scale) * (1 if mode == "colorizer" else scale)
        if h < scale or w < scale or scored < need:
            where = "LR" if mode == "colorizer" else "HR"
            why = f"{', '.join(needed_by)} need{'s' if len(needed_by) == 1 else ''}" if needed_by else "needs"
            side = need - 2 * shave
            reason = (f"{item.name}: {w}x{h} is too small for x{scale} ({why} {side}x{side} {where} pixels"
                      f"{f' after shaving {shave} from each border' if shave else ''})")
            warnings.warn(reason, DataWarning, stacklevel=2)
            skipped.append(reason)
            continue
        triple = make_triple(hr, scale)
        t0 = time.perf_counter()
        intermediate = None
        if mode == "sr":
            pred, target = sr.module(triple.lr), triple.hr
        elif mode == "colorizer":
            pred, target = join_lab(triple.lr_l, colorizer.module(triple.lr_l)), triple.lr
        elif order == "color-first":
            intermediate = join_lab(triple.lr_l, colorizer.module(triple.lr_l)).clamp(0, 1)
            pred, target = sr.module(intermediate), triple.hr
        elif order == "sr-first":
            intermediate = sr.module(gray_to_rgb(triple.lr_l)).clamp(0, 1)
            l_hr, _ = split_lab(intermediate)
            pred, target = join_lab(l_hr, colorizer.module(l_hr)), triple.hr
        else:
            raise ZooError(f"unknown order '{order}' (color-first, sr-first)")
        if device.type == "cuda":
            torch.cuda.synchronize()
        model_seconds += time.perf_counter() - t0
        pred = pred.clamp(0, 1)
        # Published SR tables score greyscale files on their raw grey values, not on 16-235 Y.
        grey_target = target[:, :1] if getattr(item, "grey", False) else target
        for m in metric_objs:
            m.update(pred, grey_target if m.accepts_grey_target else target)
        if on_image is not None:
            on_image(item.name, pred, target, triple, intermediate)
        names.append(item.name)
        n += 1
    if n == 0:
        raise ZooError(f"no usable image in {dataset.name}: {len(skipped)} skipped ({'; '.join(skipped[:3])})")
    for m in metric_objs:
        results.append(m.compute(n))
    order = {name: i for i, name in enumerate(metrics)}
    results.sort(key=lambda r: order.get(r.info.name, len(order)))
    models = {k: f"{m.name} ({m.source})" for k, m in (("colorizer", colorizer), ("sr", sr)) if m is not None}
    return EvalReport(results=results, mode=mode, dataset=dataset.name, scale=scale, n_images=n,
                      skipped=skipped, seconds=model_seconds,
                      images_per_second=n / model_seconds if model_seconds > 0 else None, models=models,
                      images=names, downloaded=[d.to_dict() for d in DOWNLOADED[fetched_before:]])
