"""What a bench runs: the job types, the plan that lists them, and running one job.

:mod:`zoo.harness.bench` makes the plan and gathers the results; :mod:`zoo.harness.executors` decides where and
when each job runs (here, or as a Ray task). Jobs are plain data, picklable, and every artefact of a job goes to the
cache or the run folder, so a job runs the same wherever it runs.

- A training job trains (or resumes, or finds finished) one model in its content-addressed run folder in the
  cache (:func:`zoo.training.settings.run_key`).
- An evaluation job scores one model or pipeline on one test set; its key covers what its numbers depend on,
  including the device type and the PSNR/SSIM backend (:func:`set_eval_device`), and its rows are cached as
  JSON under that key.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.boards.comparisons import copy_pictures, draw_samples
from zoo.data.datasets import resolve_dataset
from zoo.errors import ZooError
from zoo.harness.conformance import fail_fast
from zoo.harness.evaluate import evaluate, load_model
from zoo.harness.suite import Suite
from zoo.metrics.pixel import backend_on
from zoo.plugins.registry import get_registry
from zoo.runtime.determinism import configure as configure_determinism
from zoo.store.cache import content_key
from zoo.store.checkpoint import finished_notes
from zoo.store.download import DOWNLOADED
from zoo.store.files import atomic_write_json, locked
from zoo.store.runs import loss_summary, test_set_label
from zoo.training.loop import train
from zoo.training.settings import TrainSettings

# bump when evaluation code changes what a cached result would contain (3: per-image values, PSNR cap, size skips)
EVAL_FORMAT = 3


@dataclass
class TrainJob:
    """One model to train: which model and config, on which data, and how (:class:`TrainSettings`, which also
    carries the bench's command line: a Ray worker has its own argv)."""

    model: str
    task: str
    preset: str | None
    overrides: dict[str, Any]
    data: str
    scale: int  # the bench's scale this model is trained for (a colorizer's data_scale, an SR model's scale)
    settings: TrainSettings
    key: str = ""
    out_dir: str = ""
    # the run key without the code, and the code's hash: a finished run records them, so that the next bench
    # can say a model retrains because its code changed (zoo.harness.bench.code_changes)
    lineage: str = ""
    code: str = ""

    @property
    def steps(self) -> int:
        return self.settings.steps


@dataclass
class ModelRef:
    """A model as an evaluation job sees it: a baseline name, or a trained checkpoint."""

    name: str
    checkpoint: str | None = None
    key: str = "baseline"  # the training run key, for cache keys


@dataclass
class EvalJob:
    stage: str  # "sr", "colorizer" or "pipeline"
    order: str  # "color-first" or "sr-first" (pipelines only)
    test: str
    scale: int
    metrics: list[str]
    colorizer: ModelRef | None = None
    sr: ModelRef | None = None
    key: str = ""
    samples_dir: str = ""  # where to write comparison grids ("" = none)
    sample_images: int = 0
    device: str = "cpu"  # the device type it is keyed for (set_eval_device)
    key_payload: dict = field(default_factory=dict)  # what the key hashes, but the device
    deterministic: bool = False


@dataclass
class BenchPlan:
    suite: Suite
    train_jobs: list[TrainJob]
    eval_jobs: list[EvalJob]
    colorizers: list[str]
    sr: list[str]
    run_dir: Path
    cache: Path
    notes: list[str] = field(default_factory=list)  # said before anything runs (e.g. models without the preset)

    def request(self) -> dict[str, Any]:
        """What the command asked for: a run folder holding the same request may be written again."""
        return json.loads(json.dumps({"suite": dataclasses.asdict(self.suite), "colorizers": self.colorizers,
                                      "sr": self.sr}, default=str))


def set_eval_device(plan: BenchPlan, device_type: str) -> None:
    """Key the plan's evaluations for the device type they run on, and the PSNR/SSIM backend there: the
    numbers differ in the last bits between devices and backends, so their results are cached apart."""
    device_type = device_type.partition(":")[0]
    backend = backend_on(device_type)
    for job in plan.eval_jobs:
        job.device = device_type
        job.key = content_key({**job.key_payload, "device": device_type, "backend": backend})


# -- running one job -------------------------------------------------------------------------------------------

def run_train_job(job: TrainJob, *, device: torch.device, progress: bool = True,
                  workers: int | None = None) -> dict[str, Any]:
    """Train (or resume, or find finished) one model on ``device`` with ``workers`` loader processes (what the
    executor gives the job). Returns what the leaderboard needs about it."""
    fetched_before = len(DOWNLOADED)
    entry = get_registry().get(job.model, job.task)
    config = entry.make_config(job.preset, job.overrides)
    if finished_notes(Path(job.out_dir) / "model.safetensors", job.key, job.steps) is None:
        fail_fast(entry, config, device)  # a model of the wrong shape stops here, before any data is read
    settings = job.settings if workers is None else job.settings.replace(workers=workers)
    result = train(entry, config, resolve_dataset(job.data), settings, out_dir=Path(job.out_dir), device=device,
                   progress=progress, extra_meta={"preset": job.preset})
    meta = json.loads((Path(job.out_dir) / "model.json").read_text())
    if job.lineage and result.trained:  # what trained this run (a cached run's record is there already)
        atomic_write_json(lineage_path(job), {"model": job.model, "code": job.code, "key": job.key})
    return {"model": job.model, "key": job.key, "trained_now": result.trained, "steps": result.steps,
            "train_seconds": meta.get("train_seconds"), "notes": meta.get("notes", []),
            "loss": loss_summary(Path(job.out_dir), job.steps),
            "validated_on": (meta.get("validation") or {}).get("name"),
            "parameters": meta.get("parameters"), "checkpoint": str(result.checkpoint),
            "downloaded": [d.to_dict() for d in DOWNLOADED[fetched_before:]]}  # e.g. a loss's VGG19, on Ray too


def lineage_path(job: TrainJob) -> Path:
    """Where the cache records which code last trained this model, config, data and settings."""
    return Path(job.out_dir).parent / "lineage" / f"{job.model}-{job.lineage}.json"


def forget_training(job: TrainJob, cache: Path) -> None:
    """Drop ``job``'s cached run and every cached evaluation of a model it trained, so both are computed anew."""
    shutil.rmtree(job.out_dir, ignore_errors=True)
    for path in sorted((cache / "eval").glob("*.json")):
        try:
            refs = json.loads(path.read_text())["job"]
            keys = {(refs.get(role) or {}).get("key") for role in ("colorizer", "sr")}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if job.key in keys:
            path.unlink(missing_ok=True)
            shutil.rmtree(path.with_name(f"{path.stem}-samples"), ignore_errors=True)


def code_changes(plan: BenchPlan) -> list[str]:
    """One line per training of ``plan`` that runs because its model's code changed (the bench and the dry run
    say them)."""
    return [f"{job.model}: code changed since the cached run, retraining" for job in plan.train_jobs
            if _code_changed(job)]


def _code_changed(job: TrainJob) -> bool:
    """Whether ``job`` trains because its model's code changed since a finished run of everything else alike
    (and not because it never ran, or was interrupted)."""
    if not job.lineage or (Path(job.out_dir) / "model.json").is_file():
        return False
    try:
        recorded = json.loads(lineage_path(job).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and recorded.get("code") not in (None, job.code)


def run_eval_job(job: EvalJob, *, cache: Path, device: torch.device) -> list[dict[str, Any]]:
    """Evaluate one model or pipeline on one test set on ``device`` (the executor's); the rows are cached by
    the job's key."""
    cached = cache / "eval" / f"{job.key}.json"
    pictures = cache / "eval" / f"{job.key}-samples"
    rows = _cached_rows(cached)
    if rows is None:
        if device.type != job.device:  # the key says which device the numbers come from: never store others under it
            raise ZooError(f"evaluation keyed for {job.device} asked to run on {device}")
        # one process computes an evaluation at a time; another waits, then reads its result
        with locked(cache / "eval" / "locks" / f"{job.key}.lock"):
            rows = _cached_rows(cached)
            if rows is None:
                rows = _evaluate_job(job, cache, pictures, device)
    copy_pictures(pictures, job.samples_dir)
    return rows


def _cached_rows(path: Path) -> list[dict[str, Any]] | None:
    try:
        return json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):  # absent, or not ours: compute it
        return None


def _evaluate_job(job: EvalJob, cache: Path, pictures: Path, dev: torch.device) -> list[dict[str, Any]]:
    cached = cache / "eval" / f"{job.key}.json"
    configure_determinism(job.deterministic, dev)
    registry = get_registry()

    def load(ref: ModelRef | None, task: str):
        if ref is None:
            return None
        return load_model(ref.checkpoint or ref.name, task, scale=job.scale, device=dev, registry=registry)

    col, sr = load(job.colorizer, "colorizer"), load(job.sr, "sr")
    samples = []

    def on_image(name, pred, target, triple, intermediate):
        if len(samples) < job.sample_images:
            samples.append((name, pred.cpu(), triple, None if intermediate is None else intermediate.cpu()))

    report = evaluate(dataset=resolve_dataset(job.test), scale=job.scale, device=dev, colorizer=col, sr=sr,
                      metrics=job.metrics, order=job.order or "color-first", registry=registry,
                      on_image=on_image if job.sample_images else None,
                      metric_params={"cache_dir": cache / "features"})  # everything under --cache
    if samples:
        draw_samples(job, samples, pictures)
        copy_pictures(pictures, job.samples_dir)
    base = {"stage": job.stage, "order": job.order, "test_set": test_set_label(job.test), "scale": job.scale,
            "colorizer": job.colorizer.name if job.colorizer else None,
            "sr": job.sr.name if job.sr else None, "n_images": report.n_images,
            "images_per_second": report.images_per_second, "skipped": report.skipped}
    rows = [{**base, **r.to_dict(), "per_image": report.per_image(r)} for r in report.results]
    if not any(r.get("failed") for r in rows):  # a metric that broke is computed again by the next run
        atomic_write_json(cached, {"job": dataclasses.asdict(job), "rows": rows})
    return rows
