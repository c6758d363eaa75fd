"""``zoo bench --dry-run``: the plan, what is cached, and a measured estimate of the training time.

Nothing is trained for real, evaluated or written (no run folder, nothing in the cache). The plan is the one
a real run makes (:func:`zoo.harness.bench.plan_bench`), so the jobs and their cached status are what ``zoo bench``
then does. Each training job that is not finished is built on the chosen device and run, on batches of its
own data and through its own recipe and precision, for one warm-up step (allocations, kernel choices: paid
once by a real run) and then a few timed steps of each stage: up to ``MAX_TIMED``, but only ``MIN_TIMED``
once a stage's measurement has taken ``BUDGET_S`` seconds, and only one when the warm-up step alone took
that long: the big ``paper`` presets on a CPU cost two or three steps each (the output says how many were
timed). Time per step x the stage's remaining steps, summed, is the estimate.

Data loading is timed apart (in this process): a real run with loader processes overlaps it with compute
(a step costs the larger of compute and loading / workers), without them it adds. Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on a CPU the rise of the process's resident memory over the job
(sampled every few ms, after returning freed memory to the OS), an approximation.
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tabulate import tabulate

from zoo.data.datasets import resolve_dataset
from zoo.data.loader import make_train_loader
from zoo.errors import one_line
from zoo.harness.bench import plan_bench
from zoo.harness.jobs import BenchPlan, EvalJob, TrainJob, code_changes
from zoo.runtime import devicefacts
from zoo.runtime.device import pick_device
from zoo.store.cache import cache_root
from zoo.store.checkpoint import completed_steps
from zoo.store.runs import test_set_label
from zoo.training.loop import _to_device, loader_scale, setup, share_cores

MAX_TIMED = 5
MIN_TIMED = 2
BUDGET_S = 10.0


@dataclass
class StageTiming:
    name: str
    steps: int  # steps of this stage still to run
    compute_s: float  # per step, median of the timed steps
    load_s: float  # per step: making the batch in this process
    timed: int
    cut: bool = False  # the budget stopped the timing early (a slow step)
    per_step_s: float = 0.0  # what a step costs in the real run (compute and loading combined)


@dataclass
class TrainEstimate:
    job: TrainJob
    done: int  # steps already done (== job.steps: cached)
    stages: list[StageTiming] = field(default_factory=list)
    peak_bytes: int | None = None
    memory: str = ""  # what peak_bytes measures
    workers: int = 0
    error: str | None = None

    @property
    def status(self) -> str:
        if self.done >= self.job.steps:
            return "cached"
        return f"resume at step {self.done}" if self.done else "to train"

    @property
    def seconds(self) -> float | None:
        if self.error or self.done >= self.job.steps:
            return None
        return sum(s.steps * s.per_step_s for s in self.stages)


@dataclass
class DryRun:
    plan: BenchPlan
    device: torch.device
    trainings: list[TrainEstimate]
    evaluations: list[tuple[EvalJob, bool]]  # (job, cached)

    @property
    def seconds(self) -> float:
        return sum(t.seconds or 0.0 for t in self.trainings)


def dry_run(suite, *, registry, out=None, cache_dir=None, colorizers=None, sr=None, device=None, workers=None,
            deterministic=False, executor="local", log=print) -> DryRun:
    """Plan ``suite`` as ``zoo bench`` would, measure the trainings to run, print the plan and the estimate."""
    dev = pick_device(device)
    cache = cache_root(cache_dir)
    run_dir = Path(out) if out else Path("runs") / f"{suite.name}-<timestamp>"
    plan = plan_bench(suite, registry=registry, run_dir=run_dir, cache=cache, colorizers=colorizers, sr=sr,
                      eval_device=dev.type, deterministic=deterministic)
    log(f"dry run of bench '{suite.name}' on {dev}: nothing is trained, evaluated or written")
    for line in code_changes(plan):
        log(line)
    if executor != "local":
        log(f"  (--executor {executor}: the jobs would run as tasks; the estimate is for one job at a time here)")
    estimates = [TrainEstimate(job, _done(job)) for job in plan.train_jobs]
    evaluations = [(job, (cache / "eval" / f"{job.key}.json").is_file()) for job in plan.eval_jobs]
    to_run = [e for e in estimates if e.status != "cached"]
    if to_run:
        log(f"measuring {len(to_run)} training job(s) on {dev}: 1 warm-up step, then up to {MAX_TIMED} timed "
            f"steps per stage ({MIN_TIMED} once a stage's measurement passes {BUDGET_S:g} s, 1 when the warm-up "
            "alone does)")
    for est in to_run:
        measure(est, registry=registry, device=dev, workers=workers)
        log(f"  {_name(est.job)}: " + (f"failed: {est.error}" if est.error else
                                       f"{_fmt_rate(est)}, peak {_fmt_bytes(est.peak_bytes)} ({est.memory})"))
    report = DryRun(plan, dev, estimates, evaluations)
    for line in render(report):
        log(line)
    return report


def _done(job) -> int:
    return completed_steps(Path(job.out_dir), job.key, job.steps)


def measure(est: TrainEstimate, *, registry, device: torch.device, workers: int | None = None) -> None:
    """Fill ``est`` with timings and peak memory of a few steps of each stage still to run."""
    job = est.job
    threads = torch.get_num_threads()
    memory = _PeakMemory(device)
    model = recipe = ctx = None
    try:
        entry = registry.get(job.model, job.task)
        config = entry.make_config(job.preset, job.overrides)
        dataset = resolve_dataset(job.data)
        settings = job.settings.replace(workers=workers)
        facts = devicefacts.gather(device)
        loading = share_cores(device, facts, settings.workers)  # as the loop does
        est.workers = loading.workers
        scale = loader_scale(job.task, config, settings)
        memory.start()
        built = setup(entry, config, device, settings, facts)  # the loop's own setup
        model, recipe, ctx, channels_last = built.model, built.recipe, built.ctx, built.channels_last
        for stage, first, end in built.plan:
            begin = max(first, est.done)
            if begin >= end:
                continue
            recipe.start_stage(stage)
            model.train()
            loader = make_train_loader(dataset, task=job.task, patch_size=int(config.patch_size), scale=scale,
                                       batch_size=int(config.batch_size), seed=settings.seed, workers=0,
                                       start_step=begin, steps=1 + MAX_TIMED, uint8=True)
            batches = iter(loader)
            computes, loads, t_stage, cut, warm = [], [], time.perf_counter(), False, 0.0
            for k in range(1 + MAX_TIMED):
                t0 = time.perf_counter()
                raw = next(batches)
                t1 = time.perf_counter()
                recipe.training_step(_to_device(raw, device, job.task, channels_last), stage, begin + k)
                ctx.take_unchecked()
                _sync(device)
                t2 = time.perf_counter()
                if k == 0:
                    warm = t2 - t0  # the warm-up step
                    continue
                computes.append(t2 - t1)
                loads.append(t1 - t0)
                enough = MIN_TIMED if warm <= BUDGET_S else 1  # a step slower than the budget: time one
                if len(computes) >= enough and t2 - t_stage > BUDGET_S and k < MAX_TIMED:
                    cut = True
                    break
            timing = StageTiming(stage.name, end - begin, statistics.median(computes), statistics.median(loads),
                                 len(computes), cut)
            w = loading.workers
            timing.per_step_s = max(timing.compute_s, timing.load_s / w) if w else timing.compute_s + timing.load_s
            est.stages.append(timing)
        est.peak_bytes, est.memory = memory.stop()
    except Exception as exc:  # the model's failure is this job's estimate (out of memory is worth knowing)
        memory.stop()
        est.error = one_line(exc)
    finally:
        torch.set_num_threads(threads)
        model = recipe = ctx = None  # noqa: F841  (free the job's memory before the next one)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _PeakMemory:
    """Peak memory of one job: CUDA's allocator statistics, or sampled resident memory on a CPU."""

    def __init__(self, device: torch.device):
        self.device, self._thread, self._stop = device, None, threading.Event()
        self.base = self.peak = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        gc.collect()
        _trim()
        self.base = self.peak = _rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def stop(self) -> tuple[int | None, str]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device), "CUDA max allocated"
        if self._thread is None:
            return None, ""
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.peak = max(self.peak, _rss())
        return max(0, self.peak - self.base), "rise of resident memory"


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # Unix only

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _trim() -> None:
    # glibc keeps freed memory mapped; malloc_trim returns it, so the next job's rise is its own
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# -- output ---------------------------------------------------------------------------------------------------

def render(report: DryRun) -> list[str]:
    trainings, evaluations = report.trainings, report.evaluations
    counts = {s: sum(1 for t in trainings if t.status.split()[0] == s) for s in ("cached", "resume", "to")}
    cached_evals = sum(1 for _, c in evaluations if c)
    lines = [f"plan: {len(trainings)} training jobs ({counts['cached']} cached, {counts['resume']} to resume, "
             f"{counts['to']} to train), {len(evaluations)} evaluations ({cached_evals} cached, "
             f"{len(evaluations) - cached_evals} to run)", ""]
    rows = []
    for t in trainings:
        j = t.job
        if t.error:
            rate, peak, total = f"failed: {t.error}", "-", "-"
        elif t.status == "cached":
            rate, peak, total = "-", "-", "-"
        else:
            rate, peak, total = _fmt_rate(t), _fmt_bytes(t.peak_bytes), _fmt_seconds(t.seconds)
        rows.append([f"{j.model} x{j.scale}", j.preset or "default", j.steps, t.status, rate, peak, total])
    if rows:
        lines += tabulate(rows, headers=["training", "preset", "steps", "status", "time per step",
                                         "peak memory", "estimate"]).splitlines() + [""]
    rows = [[e.stage + (f" {e.order}" if e.order else ""),
             " + ".join(r.name for r in (e.colorizer, e.sr) if r is not None), test_set_label(e.test), f"x{e.scale}",
             "cached" if cached else "to run"] for e, cached in evaluations]
    if rows:
        lines += tabulate(rows, headers=["evaluation", "models", "test set", "scale", "status"]).splitlines() + [""]
    failed = [t for t in trainings if t.error]
    lines.append(f"estimated training time on {report.device}: {_fmt_seconds(report.seconds)} for "
                 f"{sum(1 for t in trainings if t.seconds)} job(s) one after another"
                 + (f" ({len(failed)} could not be measured)" if failed else "")
                 + "; evaluations are not timed")
    if any(s.cut for t in trainings for s in t.stages):
        lines.append("(slow steps were timed only once or twice after the warm-up step: the estimates of big "
                     "presets are rough)")
    return lines


def _name(job) -> str:
    return f"{job.model} x{job.scale}"


def _fmt_rate(t: TrainEstimate) -> str:
    if not t.stages:
        return "-"
    parts = [(f"{s.name}: " if len(t.stages) > 1 else "") + f"{s.per_step_s:.3g} s ({s.compute_s:.3g} compute, "
             f"{s.load_s:.2g} loading; {s.timed} timed)" for s in t.stages]
    return ", ".join(parts)


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


__all__ = ["DryRun", "StageTiming", "TrainEstimate", "dry_run", "measure", "render"]
