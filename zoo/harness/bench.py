"""``zoo bench``: train each model once, evaluate every colorizer x SR combination, write leaderboards.

The work is a list of jobs (:mod:`zoo.harness.jobs`): one training job per trainable model (and scale), then
evaluation jobs (each model alone, and every pipeline) that depend on them. Jobs are plain data and
content-addressed:

- a training job's key covers model, config, recipe, plugin version and source code
  (:mod:`zoo.plugins.codehash`), data fingerprint, seed, steps and scale (:func:`zoo.training.settings.run_key`);
  its run directory in the cache holds the checkpoint, so a second bench trains nothing and a changed config
  or edited code retrains only that model (and says so); an interrupted training resumes from its last
  checkpoint;
- an evaluation job's key covers the keys of the models it runs (a baseline's code included), the test set's
  fingerprint, the scale, order and metrics (a plugin metric's code included), and what changes the numbers
  beyond them: the device type it runs on and the PSNR/SSIM backend there (so CPU and GPU results never mix in
  a shared cache); its result is cached as JSON.

This module plans the jobs and gathers their results into the run folder; an executor
(:mod:`zoo.harness.executors`) runs them, by default in this process, in dependency order.

From Python, ``zoo.bench(suite=..., colorizers=..., srs=...)`` (:func:`zoo.api.bench`) runs :func:`bench_table`
and returns the results as a pandas DataFrame.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.boards.curves import run_curves
from zoo.boards.leaderboard import render_markdown, results_frame
from zoo.boards.report import write_report
from zoo.data.datasets import resolve_dataset
from zoo.errors import ZooError, did_you_mean
from zoo.harness.executors import LocalExecutor, make_executor
from zoo.harness.failures import failures
from zoo.harness.jobs import (
    EVAL_FORMAT,
    BenchPlan,
    EvalJob,
    ModelRef,
    TrainJob,
    code_changes,
    forget_training,
    set_eval_device,
)
from zoo.harness.suite import Suite, check_data_root, check_models, load_suite, validate
from zoo.metrics.pretrained import weights_for_metrics
from zoo.plugins.codehash import entry_code_hash
from zoo.plugins.registry import get_registry
from zoo.runtime.provenance import command_line, environment
from zoo.store.cache import cache_root
from zoo.store.download import DOWNLOADED
from zoo.store.files import atomic_write_bytes, atomic_write_json, claim_bench_dir, ensure_writable, json_safe
from zoo.store.runs import model_key, sample_dir, test_set_label
from zoo.store.weights import WeightsUnavailable, require
from zoo.training.settings import TrainSettings, run_keys


def plan_bench(suite: Suite, *, registry, run_dir: Path, cache: Path, colorizers=None, sr=None,
               eval_device: str = "cpu", deterministic: bool = False, command: str | None = None) -> BenchPlan:
    """Resolve models and data, and list every job with its content key. Nothing runs yet.

    ``eval_device``: the device type the evaluations will run on (their keys depend on it); ``command``: the
    command line the trainings record."""
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
    train_set = resolve_dataset(suite.train)
    train_fp = train_set.fingerprint()
    # A result computed while a weight file was missing (n/a) must not be reused once the file is there.
    weights_present = sorted(w.filename for w in weights_for_metrics(suite.metrics) if w.find())
    tests = list(suite.test) + [t for t in suite.optional_test if Path(t).is_dir()]
    test_fps = {t: resolve_dataset(t).fingerprint() for t in tests}
    val_fp = resolve_dataset(suite.val).fingerprint() if suite.val else None

    train_jobs: list[TrainJob] = []
    refs: dict[tuple[str, int], ModelRef] = {}
    for scale in suite.scales:
        for entry in col_entries + sr_entries:
            if not entry.trainable:  # a baseline: its evaluations are keyed on its code
                refs[(entry.name, scale)] = ModelRef(entry.name, key=f"baseline-{entry_code_hash(entry)}")
                continue
            preset, overrides = suite.model_config(entry, scale)
            config = entry.make_config(preset, overrides)
            entry.recipe.check_config(config)  # a config the recipe cannot train stops the bench before it starts
            settings = train_settings(suite, entry.name, scale, deterministic=deterministic, command=command)
            key, lineage, code = run_keys(entry, config, train_fp, settings, val_fp)
            out = cache / "train" / f"{entry.name}-{key}"
            train_jobs.append(TrainJob(entry.name, entry.task, preset, overrides, suite.train, scale, settings, key,
                                       str(out), lineage=lineage, code=code))
            refs[(entry.name, scale)] = ModelRef(entry.name, str(out / "model.safetensors"), key)

    # A plugin metric's code is part of the key of every evaluation it scores (the core's: EVAL_FORMAT).
    metric_code = {name: entry_code_hash(registry.metric(name)) for name in suite.metrics
                   if registry.metric(name).distribution != "zoo"}
    orders = ["color-first", "sr-first"] if suite.order == "both" else [suite.order]
    eval_jobs: list[EvalJob] = []
    for scale in suite.scales:
        for test in tests:
            def job(stage, order="", col=None, s=None, samples=False, *, test=test, scale=scale):
                payload = {"v": EVAL_FORMAT, "stage": stage, "order": order, "test": test_fps[test],
                           "scale": scale, "metrics": suite.metrics, "samples": suite.sample_images if samples else 0,
                           "colorizer": col and [col.name, col.key], "sr": s and [s.name, s.key]}
                if metric_code:
                    payload["metric_code"] = metric_code
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


def train_settings(suite: Suite, model: str, scale: int, *, deterministic: bool = False,
                   command: str | None = None) -> TrainSettings:
    """How ``suite`` trains ``model`` for ``scale``: its steps (per model where it says), seed, checkpoints,
    precision and held-out validation."""
    return TrainSettings(steps=int(suite.steps_per_model.get(model, suite.steps)), seed=suite.seed, data_scale=scale,
                         checkpoint_every=suite.checkpoint_every, precision=suite.precision,
                         deterministic=deterministic, val=suite.val or None, val_every=suite.val_every,
                         command=command)


def configure(suite_spec: str, *, registry, colorizers=(), srs=(), scale: int | None = None,
              train_data: str | None = None, tests=(), preset: str | None = None, steps: int | None = None,
              seed: int | None = None, order: str | None = None, precision: str | None = None):
    """The suite with the command line's (or ``zoo.bench()``'s) options applied, and the model selection:
    ``(suite, colorizers or None, SR models or None)``, None meaning the suite's own."""
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
              colorizers=None, sr=None, executor=None, log=print, force: bool = False,
              deterministic: bool = False, retrain=()) -> BenchResult:
    """Plan the grid, run its jobs with ``executor`` (default: in this process, on the default device), write
    the run directory. The executor knows the device, loader workers and threads (:mod:`zoo.harness.executors`).

    ``out`` may be a run folder of the same request (the same command again); any other non-empty folder is
    refused unless ``force`` (:func:`zoo.store.files.claim_bench_dir`). ``retrain``: model names (or
    ``all``) trained again even when cached, their cached evaluations dropped with them.
    """
    t0 = time.perf_counter()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("runs") / f"{suite.name}-{stamp}"
    cache = cache_root(cache_dir)
    fetched_before = len(DOWNLOADED)
    _fetch_metric_weights(suite.metrics, log)
    executor = executor or LocalExecutor()
    plan = plan_bench(suite, registry=registry, run_dir=run_dir, cache=cache, colorizers=colorizers, sr=sr,
                      eval_device=executor.eval_device, deterministic=deterministic, command=command_line())
    created = not run_dir.exists()  # after planning: a suite that cannot run leaves no empty run behind
    claim_bench_dir(run_dir, plan.request(), force)
    ensure_writable(run_dir)
    ensure_writable(cache, create=False)  # created by the first job: a cluster that never answers leaves none
    log(f"bench '{suite.name}': {len(plan.colorizers)} colorizers x {len(plan.sr)} SR models, "
        f"{len(plan.train_jobs)} training jobs, {len(plan.eval_jobs)} evaluations, executor {executor.name}, "
        f"device {executor.device_label}, run dir {run_dir}")
    for note in plan.notes:
        log(f"note: {note}")
    for job in _to_retrain(plan, retrain):
        forget_training(job, cache)
        log(f"{job.model}: retraining (--retrain)")
    for line in code_changes(plan):
        log(line)
    try:
        models, rows = executor.run(plan, log)
    except BaseException:
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # e.g. the Ray cluster did not answer: leave no empty run behind
        raise
    trained = sum(bool(info["trained_now"]) for info in models.values())

    params = {}
    for name in plan.colorizers + plan.sr:
        entry = registry.get(name)
        for scale in suite.scales:
            # counted when the model was trained (building some models, even on the meta device, takes
            # seconds); baselines and runs from before the count was recorded are built to count them
            recorded = models.get(model_key(name, scale), {}).get("parameters")
            params[model_key(name, scale)] = (recorded if recorded is not None
                                              else _count(entry, *suite.model_config(entry, scale)))
    meta = {
        "suite": dataclasses.asdict(suite),
        "created": stamp,
        "device": executor.device_label,
        "executor": executor.name,
        "colorizers": plan.colorizers,
        "sr": plan.sr,
        "models": models,
        "params": params,
        "versions": _versions(registry, plan.colorizers + plan.sr),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "threads": executor.threads or torch.get_num_threads()},
        "request": plan.request(),
        "environment": environment(executor.device),
        "train_jobs": len(plan.train_jobs),
        "trained_now": trained,
        "downloaded": _downloads(DOWNLOADED[fetched_before:], models),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    failed = failures(models, rows)
    if failed:
        meta["failures"] = failed
    write_run(run_dir, rows, meta)
    trained_ok = [j for j in plan.train_jobs if not models[model_key(j.model, j.scale)].get("failed")]
    several_scales = len({j.scale for j in trained_ok}) > 1
    run_curves(run_dir, [(f"{j.model} x{j.scale}" if several_scales else j.model, j.key, Path(j.out_dir))
                         for j in trained_ok], cache)
    write_report([run_dir], run_dir)
    return BenchResult(run_dir, trained, len(plan.train_jobs), len(plan.eval_jobs), time.perf_counter() - t0, rows,
                       failed)


def write_run(run_dir: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """The bench's results in its run folder (:mod:`zoo.store.runs` reads them back)."""
    run_dir = Path(run_dir)
    atomic_write_bytes(run_dir / "results.jsonl",
                       "".join(json.dumps(json_safe(r), sort_keys=True, allow_nan=False) + "\n" for r in rows).encode())
    atomic_write_bytes(run_dir / "results.csv", results_frame(rows).to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "leaderboard.md", render_markdown([(meta, rows)]).encode())
    atomic_write_json(run_dir / "run.json", meta)  # last: a folder with run.json holds a complete run


def _to_retrain(plan: BenchPlan, names) -> list[TrainJob]:
    names = [n for v in names or () for n in str(v).split(",") if n.strip()]
    if not names:
        return []
    known = {job.model for job in plan.train_jobs}
    unknown = [n for n in names if n != "all" and n not in known]
    if unknown:
        raise ZooError(f"--retrain {unknown[0]}: not a model this bench trains{did_you_mean(unknown[0], known)} "
                       f"(trains: {', '.join(sorted(known)) or 'none'}; or 'all')")
    return [job for job in plan.train_jobs if "all" in names or job.model in names]


def _count(entry, preset, overrides) -> int | None:
    try:
        return entry.parameter_count(preset, **overrides)
    except Exception:  # a model that cannot build has already failed its jobs; the count is informational
        return None


def _fetch_metric_weights(metrics, log) -> None:
    """Fetch the weight files the suite's metrics need before any job starts (once, in this process, where
    the user sees it; Ray tasks then find them). One that cannot be fetched makes its metric n/a, with why."""
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
    out = {"zoo": zoo.__version__, "torch": torch.__version__}
    for n in names:
        e = registry.get(n)
        out[f"{e.distribution}"] = e.version
    return out


def bench_table(suite: str = "default", colorizers=None, srs=None, **options):
    """:func:`zoo.api.bench` (documented there): the options checked, the bench run, its rows as a DataFrame."""
    known = {"scale", "data", "test", "preset", "steps", "seed", "order", "precision", "device", "out", "cache",
             "workers", "executor", "address", "gpus_per_job", "log", "retrain"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ZooError(f"zoo.bench() has no option '{unknown[0]}' (options: {', '.join(sorted(known))})")
    test = options.get("test")
    registry = get_registry()
    plan_suite, col_sel, sr_sel = configure(
        suite, registry=registry, colorizers=_as_list(colorizers), srs=_as_list(srs), scale=options.get("scale"),
        train_data=options.get("data"), tests=[test] if isinstance(test, (str, Path)) else list(test or ()),
        preset=options.get("preset"), steps=options.get("steps"), seed=options.get("seed"),
        order=options.get("order"), precision=options.get("precision"))
    runner = make_executor(options.get("executor", "local"), device=options.get("device"),
                           workers=options.get("workers"), progress=False, address=options.get("address"),
                           gpus_per_job=options.get("gpus_per_job"))
    out = options.get("out")
    result = run_bench(plan_suite, registry=registry, out=Path(out) if out else None, cache_dir=options.get("cache"),
                       colorizers=col_sel, sr=sr_sel, executor=runner, log=options.get("log") or (lambda *_: None),
                       retrain=_as_list(options.get("retrain")))
    if result.failures:
        # stacklevel 3: the caller of zoo.bench()
        warnings.warn(f"{len(result.failures)} bench job(s) failed (their rows have a 'failed' reason; "
                      f"tracebacks in {result.run_dir / 'errors.log'}): {result.failures[0]}", stacklevel=3)
    table = results_frame(result.rows)
    table.attrs["run_dir"] = str(result.run_dir)
    return table


def _as_list(value):
    if value is None:
        return ()
    return [value] if isinstance(value, str) else list(value)

