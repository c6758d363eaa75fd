"""``zoo bench``: train each model once, evaluate every colorizer x SR combination, write leaderboards.

The work is a list of jobs: one training job per trainable model (and scale), then evaluation jobs (each
model alone, and every pipeline) that depend on them. Jobs are plain data and content-addressed:

- a training job's key covers model, config, recipe, plugin version, data fingerprint, seed, steps and scale;
  its run directory in the cache holds the checkpoint, so a second bench trains nothing and a changed
  config retrains only that model; an interrupted training resumes from its last checkpoint;
- an evaluation job's key covers the keys of the models it runs, the test set's fingerprint, the scale,
  order and metrics, and what changes the numbers beyond them: the device type it runs on and the PSNR/SSIM
  backend there (so CPU and GPU results never mix in a shared cache); its result is cached as JSON.

The default executor runs jobs in this process, in dependency order.

From Python, ``zoo.bench(suite=..., colorizers=..., srs=...)`` (this module is callable) runs
:func:`zoo.api.bench` and returns the results as a pandas DataFrame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from zoo.cache import cache_root
from zoo.checkpoint import atomic_write_json
from zoo.errors import ZooError
from zoo.failures import failures
from zoo.report import write_report
from zoo.runfiles import safe_name, sample_dir, test_set_label
from zoo.suite import Suite

EVAL_FORMAT = 3  # bump when evaluation code changes what a cached result would contain (3: per-image values, PSNR cap, size skips)


@dataclass
class TrainJob:
    model: str
    task: str
    preset: str | None
    overrides: dict[str, Any]
    data: str
    scale: int
    steps: int
    seed: int
    checkpoint_every: int
    key: str = ""
    out_dir: str = ""
    precision: str = "auto"
    command: str = ""  # the bench's command line, recorded in the checkpoint (a Ray worker has its own argv)
    deterministic: bool = False


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


def _key(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_bench(suite: Suite, *, registry, run_dir: Path, cache: Path, colorizers=None, sr=None,
               eval_device: str = "cpu", deterministic: bool = False) -> BenchPlan:
    """Resolve models and data, and list every job with its content key. Nothing runs yet.

    ``eval_device``: the device type the evaluations will run on (their keys depend on it)."""
    from zoo.datasets import resolve_dataset
    from zoo.registry import did_you_mean
    from zoo.suite import check_models
    from zoo.suitefiles import check_data_root
    from zoo.training import run_key

    check_data_root(suite)
    for name in suite.metrics:  # an unknown metric is the suite's error: say so before any training
        registry.metric(name)
    check_models(suite, registry)
    col_entries = registry.select(colorizers if colorizers is not None else suite.colorizers, "colorizer")
    sr_entries = registry.select(sr if sr is not None else suite.sr, "sr")
    if not col_entries and not sr_entries:
        raise ZooError("nothing to benchmark: no colorizer and no SR model selected")
    # A model without the preset trains at its defaults (the paper's); a preset no model has is a typo.
    trainable = [e for e in col_entries + sr_entries if e.trainable]
    without = [e.name for e in trainable if suite.preset not in e.presets]
    if trainable and len(without) == len(trainable):
        known = sorted({p for e in trainable for p in e.presets})
        raise ZooError(f"unknown preset '{suite.preset}'{did_you_mean(suite.preset, known)} (presets of the "
                       f"selected models: {', '.join(known) or 'none'})")
    notes = [f"preset '{suite.preset}' is not defined by {', '.join(without)}: trained at the default "
             f"(paper) config"] if without else []
    from zoo.metrics.pretrained import weights_for_metrics

    train_set = resolve_dataset(suite.train)
    train_fp = train_set.fingerprint()
    # A result computed while a weight file was missing (n/a) must not be reused once the file is there.
    weights_present = sorted(w.filename for w in weights_for_metrics(suite.metrics) if w.find())
    tests = list(suite.test) + [t for t in suite.optional_test if Path(t).is_dir()]
    test_fps = {t: resolve_dataset(t).fingerprint() for t in tests}

    train_jobs: list[TrainJob] = []
    refs: dict[tuple[str, int], ModelRef] = {}
    for scale in suite.scales:
        for entry in col_entries + sr_entries:
            if not entry.trainable:
                refs[(entry.name, scale)] = ModelRef(entry.name)
                continue
            overrides = dict(suite.overrides.get(entry.name, {}))
            if entry.task == "sr":
                overrides["scale"] = scale
            preset = suite.preset if suite.preset in entry.presets else None
            config = entry.make_config(preset, overrides)
            entry.recipe.check_config(config)  # a config the recipe cannot train stops the bench before it starts
            steps = int(suite.steps_per_model.get(entry.name, suite.steps))
            key = run_key(entry, config, train_fp, suite.seed, steps, scale, suite.precision,
                          deterministic=deterministic)
            out = cache / "train" / f"{entry.name}-{key}"
            train_jobs.append(TrainJob(entry.name, entry.task, preset, overrides, suite.train, scale, steps,
                                       suite.seed, suite.checkpoint_every, key, str(out), suite.precision,
                                       deterministic))
            refs[(entry.name, scale)] = ModelRef(entry.name, str(out / "model.safetensors"), key)

    orders = ["color-first", "sr-first"] if suite.order == "both" else [suite.order]
    eval_jobs: list[EvalJob] = []
    for scale in suite.scales:
        for test in tests:
            def job(stage, order="", col=None, s=None, samples=False):
                payload = {"v": EVAL_FORMAT, "stage": stage, "order": order, "test": test_fps[test],
                           "scale": scale, "metrics": suite.metrics, "samples": suite.sample_images if samples else 0,
                           "colorizer": col and [col.name, col.key], "sr": s and [s.name, s.key]}
                if weights_present:  # only then, so that keys of runs without such files stay as they were
                    payload["weights"] = weights_present
                if deterministic:
                    payload["deterministic"] = True
                sdir = str(run_dir / sample_dir(stage, order, col and col.name, s and s.name, test_set_label(test),
                                                scale)) if samples else ""
                return EvalJob(stage, order, test, scale, list(suite.metrics), col, s, "", sdir,
                               suite.sample_images if samples else 0, key_payload=payload,
                               deterministic=deterministic)

            for e in sr_entries:
                eval_jobs.append(job("sr", s=refs[(e.name, scale)], samples=test == tests[0]))
            for e in col_entries:
                eval_jobs.append(job("colorizer", col=refs[(e.name, scale)], samples=test == tests[0]))
            for order in orders:
                for c in col_entries:
                    for s in sr_entries:
                        eval_jobs.append(job("pipeline", order, refs[(c.name, scale)], refs[(s.name, scale)],
                                             samples=test == tests[0]))
    plan = BenchPlan(suite, train_jobs, eval_jobs, [e.name for e in col_entries], [e.name for e in sr_entries],
                     run_dir, cache, notes)
    set_eval_device(plan, eval_device)
    return plan


def set_eval_device(plan: BenchPlan, device_type: str) -> None:
    """Key the plan's evaluations for the device type they run on, and the PSNR/SSIM backend there: the
    numbers differ in the last bits between devices and backends, so their results are cached apart."""
    from zoo.metrics.pixel import backend_on

    device_type = device_type.partition(":")[0]
    backend = backend_on(device_type)
    for job in plan.eval_jobs:
        job.device = device_type
        job.key = _key({**job.key_payload, "device": device_type, "backend": backend})


def configure(suite_spec: str, *, registry, colorizers=(), srs=(), scale: int | None = None,
              train_data: str | None = None, tests=(), preset: str | None = None, steps: int | None = None,
              seed: int | None = None, order: str | None = None, precision: str | None = None):
    """The suite with the command line's (or ``zoo.bench()``'s) options applied, and the model selection:
    ``(suite, colorizers or None, SR models or None)``, None meaning the suite's own."""
    from zoo.suite import load_suite, validate

    suite = load_suite(str(suite_spec))
    tests = [str(t) for t in tests]
    suite = suite.replace(train=str(train_data) if train_data else None, test=tests or None, preset=preset,
                          steps=steps, seed=seed, order=order, scales=[scale] if scale else None, precision=precision)
    if tests:
        suite.optional_test = []
    validate(suite)
    col_names, sr_names = _names(colorizers), _names(srs)
    col_sel = _with_baselines(registry, col_names, "colorizer") if col_names else None
    sr_sel = _with_baselines(registry, sr_names, "sr") if sr_names else None
    # Selecting one axis keeps the other axis's baselines, unless the suite leaves that axis out entirely
    # (sr-classic has no colorizers).
    if col_names and not sr_names and suite.sr:
        sr_sel = _with_baselines(registry, [], "sr")
    if sr_names and not col_names and suite.colorizers:
        col_sel = _with_baselines(registry, [], "colorizer")
    return suite, col_sel, sr_sel


def _names(values) -> list[str]:
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def _with_baselines(registry, names, task):
    """The selection plus every reference baseline of the task (models with nothing to train)."""
    baselines = [e.name for e in registry.entries(task=task) if not e.trainable]
    return list(dict.fromkeys(baselines + list(names)))


# -- jobs ---------------------------------------------------------------------------------------------------

def run_train_job(job: TrainJob, *, device: str | None = None, progress: bool = True,
                  workers: int | None = None) -> dict[str, Any]:
    """Train (or resume, or find finished) one model. Returns what the leaderboard needs about it."""
    from zoo.datasets import resolve_dataset
    from zoo.device import pick_device
    from zoo.download import DOWNLOADED
    from zoo.registry import get_registry
    from zoo.training import train

    fetched_before = len(DOWNLOADED)
    entry = get_registry().get(job.model, job.task)
    config = entry.make_config(job.preset, job.overrides)
    result = train(entry, config, resolve_dataset(job.data), steps=job.steps, out_dir=Path(job.out_dir),
                   device=pick_device(device), seed=job.seed, data_scale=job.scale,
                   checkpoint_every=job.checkpoint_every, workers=workers, progress=progress,
                   precision=job.precision, command=job.command or None, deterministic=job.deterministic,
                   extra_meta={"preset": job.preset})
    meta = json.loads((Path(job.out_dir) / "model.json").read_text())
    return {"model": job.model, "key": job.key, "trained_now": result.trained, "steps": result.steps,
            "train_seconds": meta.get("train_seconds"), "notes": meta.get("notes", []),
            "parameters": meta.get("parameters"), "checkpoint": str(result.checkpoint),
            "downloaded": [d.to_dict() for d in DOWNLOADED[fetched_before:]]}  # e.g. a loss's VGG19, on Ray too


def run_eval_job(job: EvalJob, *, cache: Path, device: str | None = None) -> list[dict[str, Any]]:
    """Evaluate one model or pipeline on one test set; the rows are cached by the job's key."""
    from zoo.folders import locked

    cached = cache / "eval" / f"{job.key}.json"
    pictures = cache / "eval" / f"{job.key}-samples"
    rows = _cached_rows(cached)
    if rows is None:
        from zoo.device import pick_device

        dev = pick_device(device)
        if dev.type != job.device:  # the key says which device the numbers come from: never store others under it
            raise ZooError(f"evaluation keyed for {job.device} asked to run on {dev}")
        # one process computes an evaluation at a time; another waits, then reads its result
        with locked(cache / "eval" / "locks" / f"{job.key}.lock"):
            rows = _cached_rows(cached)
            if rows is None:
                rows = _evaluate_job(job, cache, pictures, device)
    _copy_pictures(pictures, job.samples_dir)
    return rows


def _cached_rows(path: Path) -> list[dict[str, Any]] | None:
    try:
        return json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):  # absent, or not ours: compute it
        return None


def _evaluate_job(job: EvalJob, cache: Path, pictures: Path, device: str | None) -> list[dict[str, Any]]:
    from zoo.datasets import resolve_dataset
    from zoo.device import pick_device
    from zoo.evaluate import evaluate, load_model
    from zoo.registry import get_registry

    cached = cache / "eval" / f"{job.key}.json"
    dev = pick_device(device)
    from zoo.determinism import configure

    configure(job.deterministic, dev)
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
                      metrics=job.metrics, order=job.order or "color-first",
                      on_image=on_image if job.sample_images else None,
                      metric_params={"cache_dir": cache / "features"})  # everything under --cache
    if samples:
        _draw_samples(job, samples, pictures)
        _copy_pictures(pictures, job.samples_dir)
    base = {"stage": job.stage, "order": job.order, "test_set": test_set_label(job.test), "scale": job.scale,
            "colorizer": job.colorizer.name if job.colorizer else None,
            "sr": job.sr.name if job.sr else None, "n_images": report.n_images,
            "images_per_second": report.images_per_second, "skipped": report.skipped}
    rows = [{**base, **r.to_dict(), "per_image": report.per_image(r)} for r in report.results]
    atomic_write_json(cached, {"job": dataclasses.asdict(job), "rows": rows})
    return rows


def _draw_samples(job: EvalJob, samples: list, pictures: Path) -> None:
    """What the report's comparison view shows: each output at native pixels (``out/``), its ground truth and
    gray input (shared by the rows of a test set: ``_truth_hr`` or ``_truth_lr``, ``_input``), and for a
    pipeline the comparison grid."""
    from zoo.color import gray_to_rgb
    from zoo.pictures import comparison_grid, save_png

    pictures.mkdir(parents=True, exist_ok=True)
    truth = "_truth_lr" if job.stage == "colorizer" else "_truth_hr"
    for name, pred, triple, intermediate in samples:
        file = f"{safe_name(name)}.png"
        save_png(pictures / "out" / file, pred)
        save_png(pictures / truth / file, triple.lr if job.stage == "colorizer" else triple.hr)
        save_png(pictures / "_input" / file, gray_to_rgb(triple.lr_l))
        comparison_grid(pictures / file, **_grid_panels(job, triple, intermediate, pred))


def _grid_panels(job: EvalJob, triple, intermediate, pred) -> dict[str, Any]:
    """What each stage's picture shows: its input, what the stage adds, and the ground truth."""
    from zoo.color import gray_to_rgb

    gray = gray_to_rgb(triple.lr_l)
    if job.stage == "sr":
        return {"title": f"{job.sr.name}: colour LR -> HR", "truth": triple.hr,
                "panels": [("colour LR input", triple.lr), (f"output ({job.sr.name})", pred), ("ground truth", triple.hr)]}
    if job.stage == "colorizer":
        return {"title": f"{job.colorizer.name}: gray LR -> colour LR", "truth": triple.lr,
                "panels": [("gray LR input", gray), (f"output ({job.colorizer.name})", pred),
                           ("ground truth (colour LR)", triple.lr)]}
    col, sr = job.colorizer.name, job.sr.name
    first = job.order == "sr-first"
    middle = (f"upscaled gray ({sr})" if first else f"colorized LR ({col})", intermediate if intermediate is not None
              else gray)
    return {"title": f"{sr} -> {col} (SR first)" if first else f"{col} -> {sr}", "truth": triple.hr,
            "panels": [("gray LR input", gray), middle, (f"output ({col} + {sr})", pred), ("ground truth", triple.hr)]}


def _copy_pictures(src: Path, dest: str) -> None:
    """The job's pictures into its folder of the run; the shared ground truth and input beside it."""
    from zoo.checkpoint import atomic_write_bytes

    if not dest or not src.is_dir():
        return
    dest = Path(dest)
    for f in src.rglob("*.png"):
        rel = f.relative_to(src)
        target = dest.parent / rel if rel.parts[0] in ("_truth_hr", "_truth_lr", "_input") else dest / rel
        if target.parent != dest.parent or not target.exists():
            atomic_write_bytes(target, f.read_bytes())


# -- the run --------------------------------------------------------------------------------------------

@dataclass
class BenchResult:
    run_dir: Path
    trained: int  # training jobs that ran steps now
    train_jobs: int
    eval_jobs: int
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per failed job (tracebacks: errors.log)


def run_bench(suite: Suite, *, registry, out: Path | None = None, cache_dir: Path | None = None,
              colorizers=None, sr=None, device: str | None = None, progress: bool = True,
              workers: int | None = None, executor=None, log=print, force: bool = False,
              deterministic: bool = False) -> BenchResult:
    """Plan the grid, run its jobs with ``executor`` (default: in this process), write the run directory.

    ``out`` may be a run folder of the same request (the same command again); any other non-empty folder is
    refused unless ``force`` (:func:`zoo.folders.claim_bench_dir`).
    """
    from zoo.device import pick_device
    from zoo.download import DOWNLOADED
    from zoo.executors import LocalExecutor
    from zoo.folders import claim_bench_dir, ensure_writable

    t0 = time.perf_counter()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("runs") / f"{suite.name}-{stamp}"
    cache = cache_root(cache_dir)
    fetched_before = len(DOWNLOADED)
    _fetch_metric_weights(suite.metrics, log)
    executor = executor or LocalExecutor(device=device, progress=progress, workers=workers)
    # the ray executor re-keys the evaluations for its tasks' device once it knows the cluster
    eval_device = pick_device(device).type if executor.name == "local" else "cpu"
    plan = plan_bench(suite, registry=registry, run_dir=run_dir, cache=cache, colorizers=colorizers, sr=sr,
                      eval_device=eval_device, deterministic=deterministic)
    from zoo.provenance import command_line, environment

    for job in plan.train_jobs:
        job.command = command_line()
    created = not run_dir.exists()  # after planning: a suite that cannot run leaves no empty run behind
    claim_bench_dir(run_dir, plan.request(), force)
    ensure_writable(run_dir)
    ensure_writable(cache, create=False)  # created by the first job: a cluster that never answers leaves none
    dev = pick_device(device) if executor.name == "local" else (device or "auto")
    log(f"bench '{suite.name}': {len(plan.colorizers)} colorizers x {len(plan.sr)} SR models, "
        f"{len(plan.train_jobs)} training jobs, {len(plan.eval_jobs)} evaluations, executor {executor.name}, "
        f"device {dev}, run dir {run_dir}")
    for note in plan.notes:
        log(f"note: {note}")
    try:
        models, rows = executor.run(plan, log)
    except BaseException:
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # e.g. the Ray cluster did not answer: leave no empty run behind
        raise
    trained = sum(bool(info["trained_now"]) for info in models.values())

    from zoo.leaderboard import write_run

    params = {}
    for name in plan.colorizers + plan.sr:
        entry = registry.get(name)
        for scale in suite.scales:
            overrides = dict(suite.overrides.get(name, {}))
            if entry.task == "sr":
                overrides["scale"] = scale
            preset = suite.preset if suite.preset in entry.presets else None
            # counted when the model was trained (building some models, even on the meta device, takes
            # seconds); baselines and runs from before the count was recorded are built to count them
            recorded = models.get(f"{name}@x{scale}", {}).get("parameters")
            params[f"{name}@x{scale}"] = recorded if recorded is not None else _count(entry, preset, overrides)
    meta = {
        "suite": dataclasses.asdict(suite),
        "created": stamp,
        "device": str(dev),
        "executor": executor.name,
        "colorizers": plan.colorizers,
        "sr": plan.sr,
        "models": models,
        "params": params,
        "versions": _versions(registry, plan.colorizers + plan.sr),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "threads": getattr(executor, "threads", None) or torch.get_num_threads()},
        "request": plan.request(),
        "environment": environment(dev if executor.name == "local" else None),
        "train_jobs": len(plan.train_jobs),
        "trained_now": trained,
        "downloaded": _downloads(DOWNLOADED[fetched_before:], models),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    failed = failures(models, rows)
    if failed:
        meta["failures"] = failed
    write_run(run_dir, rows, meta)
    _write_curves(run_dir, [j for j in plan.train_jobs if not models[f"{j.model}@x{j.scale}"].get("failed")], cache)
    write_report([run_dir], run_dir)
    return BenchResult(run_dir, trained, len(plan.train_jobs), len(plan.eval_jobs), time.perf_counter() - t0, rows,
                       failed)


def _count(entry, preset, overrides) -> int | None:
    try:
        return entry.parameter_count(preset, **overrides)
    except Exception:  # a model that cannot build has already failed its jobs; the count is informational
        return None


def _fetch_metric_weights(metrics, log) -> None:
    """Fetch the weight files the suite's metrics need before any job starts (once, in this process, where
    the user sees it; Ray tasks then find them). One that cannot be fetched makes its metric n/a, with why."""
    from zoo.download import DOWNLOADED
    from zoo.metrics.pretrained import weights_for_metrics
    from zoo.weights import WeightsUnavailable, require

    for w in weights_for_metrics(metrics):
        before = len(DOWNLOADED)
        try:
            require(w)
        except WeightsUnavailable:
            continue  # the metric's rows carry the reason
        for d in DOWNLOADED[before:]:
            log(f"  downloaded {d.note()}")


def _downloads(here, models) -> list[dict[str, Any]]:
    """Weight files fetched during the run: in this process, and by training jobs elsewhere (Ray)."""
    out: dict[tuple, dict[str, Any]] = {}
    for d in [x.to_dict() for x in here] + [d for info in models.values() for d in info.get("downloaded", [])]:
        out.setdefault((d["filename"], d["sha256"]), d)
    return list(out.values())


def _versions(registry, names) -> dict[str, str]:
    import zoo

    out = {"zoo": zoo.__version__, "torch": torch.__version__}
    for n in names:
        e = registry.get(n)
        out[f"{e.distribution}"] = e.version
    return out


def _write_curves(run_dir: Path, jobs: list[TrainJob], cache: Path) -> None:
    """The loss curves of the run's trainings. The picture depends only on the finished runs (their keys), so
    it is drawn once and kept in the cache: a warm bench copies it (drawing takes seconds)."""
    import zoo
    from zoo.checkpoint import atomic_write_bytes
    from zoo.pictures import loss_curves
    from zoo.training import read_log

    several_scales = len({j.scale for j in jobs}) > 1
    labels = [f"{j.model} x{j.scale}" if several_scales else j.model for j in jobs]
    drawn_by = ["curves", zoo.__version__]  # a new zoo may draw them differently
    cached = cache / "curves" / f"{_key([drawn_by, [[label, j.key] for label, j in zip(labels, jobs)]])}.png"
    if cached.is_file():
        atomic_write_bytes(run_dir / "curves.png", cached.read_bytes())
        return
    logs = {label: read_log(Path(j.out_dir)) for label, j in zip(labels, jobs)}
    logs = {k: v for k, v in logs.items() if v}
    if logs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_curves(run_dir / "curves.png", logs)
        atomic_write_bytes(cached, (run_dir / "curves.png").read_bytes())


class _CallableModule(types.ModuleType):
    """``zoo.bench`` is this module (``zoo.bench.run_bench``) and the Python API ``zoo.bench(suite=...)``
    (:func:`zoo.api.bench`): a package attribute cannot be both, so the module is callable."""

    def __call__(self, *args, **kwargs):
        from zoo.api import bench

        return bench(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
