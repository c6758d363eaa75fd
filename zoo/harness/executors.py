"""Executors run a bench plan's jobs: training jobs first, then evaluation jobs that depend on them.

- ``local`` (default): in this process, one job at a time, in dependency order. No extra dependency.
- ``ray``: each training job is a Ray task (``pip install 'zoo[ray]'``), on a private local Ray instance or an
  existing cluster (``--address``, see zoo.harness.raycluster). Training tasks start at once; evaluations are
  submitted as soon as the models they need are trained, several to a task (Ray starts a fresh process for
  each GPU task, so a task per evaluation would import torch and build the metric networks every time).
  What each task asks for (GPUs, CPUs for its loader processes) is decided from the cluster's nodes by
  :func:`zoo.runtime.devicefacts.ray_plan`, which refuses settings the cluster cannot honour. The driver prints one
  progress line per finished job (done / running / failed); Ray's own logs stay in its log folder.

Jobs are plain data and every artefact goes to the run directory and the cache, so both executors produce
the same numbers. On a cluster those two folders must be on storage every node sees (a shared filesystem):
the executor checks that from a worker before it schedules anything.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.harness.failures import (
    ERRORS_LOG,
    append_log,
    failed_training,
    failure_rows,
    guarded_eval,
    guarded_train,
    job_label,
)
from zoo.harness.jobs import BenchPlan, TrainJob, set_eval_device
from zoo.harness.raycluster import DEFAULT_TIMEOUT, ray_session
from zoo.runtime.device import pick_device
from zoo.runtime.devicefacts import NodeFacts, ray_plan
from zoo.store.runs import model_key

# Ray is optional (zoo[ray]): imported where the ray executor needs it

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """Every job in this process, one at a time, on one device (resolved once, here).

    What the bench asks of an executor: ``name``; ``device`` (the torch.device jobs run on in this process, or
    None when they run elsewhere); ``device_label`` (for the log and run.json); ``eval_device`` (the device
    type the evaluations are keyed for before they run; an executor that learns it later re-keys them with
    :func:`zoo.harness.jobs.set_eval_device`); ``threads``; and ``run(plan, log)``."""

    name = "local"

    def __init__(self, *, device: str | None = None, progress: bool = True, workers: int | None = None,
                 threads: int | None = None):
        # threads: intra-op threads for every job (None: torch's default). Float reductions round by thread
        # count, so threads=1 reproduces the Ray executor (one thread per task) to the last bit.
        self.device = pick_device(device)
        self.progress, self.workers, self.threads = progress, workers, threads

    @property
    def device_label(self) -> str:
        return str(self.device)

    @property
    def eval_device(self) -> str:
        return self.device.type

    def run(self, plan: BenchPlan, log: Callable[[str], Any]) -> tuple[dict[str, dict], list[dict]]:
        log_path = plan.run_dir / ERRORS_LOG
        models, by_key = {}, {}
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for job in plan.train_jobs:
                info = guarded_train(job, log_path=log_path, device=self.device, progress=self.progress,
                                     workers=self.workers)
                _log_train(log, job, info)
                models[model_key(job.model, job.scale)] = by_key[job.key] = info
            rows = []
            for job in plan.eval_jobs:
                deps = [by_key[r.key] for r in (job.colorizer, job.sr) if r is not None and r.key in by_key]
                rows.extend(guarded_eval(job, cache=plan.cache, log_path=log_path, trained=deps, device=self.device))
        finally:
            torch.set_num_threads(before)
        return models, rows


def _log_train(log, job, info) -> None:
    if info.get("failed"):
        log(f"  FAILED  {job.model} x{job.scale}: {info['failed']}")
        return
    status = "trained" if info["trained_now"] else "cached"
    log(f"  {status:7s} {job.model} x{job.scale} ({job.steps} steps, {info['train_seconds'] or 0:.1f} s)")


# -- Ray -----------------------------------------------------------------------------------------------------

def _check_paths(paths: list[str]) -> str | None:
    """Run on a worker: can it read and write the run directory and the cache?"""
    for p in paths:
        try:
            Path(p).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=p, prefix=".zoo-probe-"):
                pass
        except OSError as exc:
            return f"worker {socket.gethostname()} cannot write {p}: {exc.strerror or exc}"
    return None


# Each task first yields STARTED, then its result: the driver counts a job as running only once it runs.
STARTED = "started"


def _train_task(job, device, workers, threads, log_path):
    yield STARTED
    torch.set_num_threads(threads)
    yield 0, guarded_train(job, log_path=log_path, device=pick_device(device), progress=False, workers=workers)


def _eval_task(jobs, cache, device, threads, log_path):
    """Several evaluations in one process: the metric networks (Inception) are built once for all of them."""
    yield STARTED
    torch.set_num_threads(threads)
    dev = pick_device(device)
    for i, job in enumerate(jobs):
        yield i, guarded_eval(job, cache=Path(cache), log_path=log_path, device=dev)


class RayExecutor:
    name = "ray"

    def __init__(self, *, address: str | None = None, gpus_per_job: float | None = None, num_cpus: int | None = None,
                 device: str | None = None, workers: int | None = None, timeout: float | None = None,
                 address_source: str = "--address"):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ZooError("the ray executor needs Ray: pip install 'zoo[ray]'") from None
        self.address, self.gpus_per_job, self.num_cpus = address, gpus_per_job, num_cpus
        self.requested_device, self.workers = device, workers
        self.threads = None  # one per task, decided from the cluster (ray_plan)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.address_source = address_source

    # the cluster's device type is known once the run starts (_run re-keys the evaluations for it)
    device = None
    eval_device = "cpu"

    @property
    def device_label(self) -> str:
        return self.requested_device or "auto"

    def run(self, plan: BenchPlan, log: Callable[[str], Any]) -> tuple[dict[str, dict], list[dict]]:
        # Workers must import the same plugins as this process.
        env_vars = {k: v for k, v in os.environ.items() if k.startswith("ZOO_") or k == "TORCH_HOME"}
        with ray_session(self.address, source=self.address_source, timeout=self.timeout, num_cpus=self.num_cpus,
                         env_vars=env_vars) as session:
            log(f"  ray: {session.description}; Ray's logs: {session.logs}")
            return self._run(plan, log, session.logs)

    def _run(self, plan: BenchPlan, log, logs: str) -> tuple[dict[str, dict], list[dict]]:
        import ray

        rp = ray_plan(_nodes(), gpus_per_job=self.gpus_per_job, device=self.requested_device, workers=self.workers)
        for note in rp.notes:
            log(f"  ray: {note}")
        log(f"  ray: each training asks for {rp.train_gpus:g} GPU and {rp.train_cpus} CPU ({rp.workers} loader "
            f"processes), evaluations {rp.eval_gpus:g} GPU, up to {rp.eval_group} per task; device {rp.device}")
        set_eval_device(plan, rp.device)  # the evaluations' cache keys name the device they run on
        problem = ray.get(ray.remote(_check_paths).remote([str(plan.run_dir.resolve()), str(plan.cache.resolve())]))
        if problem:
            raise ZooError(f"{problem}: on a cluster, --out and --cache must be on storage every node sees")
        common = {"max_retries": 0, "num_returns": "streaming"}
        train_remote = ray.remote(num_cpus=rp.train_cpus, num_gpus=rp.train_gpus, **common)(_train_task)
        eval_remote = ray.remote(num_cpus=rp.eval_cpus, num_gpus=rp.eval_gpus, **common)(_eval_task)
        progress = _Progress(len(plan.train_jobs) + len(plan.eval_jobs), log)
        log_path = str((plan.run_dir / ERRORS_LOG).resolve())
        # An evaluation is submitted once the models it needs are trained; one whose model failed never runs
        # and gets failed rows instead (zoo.harness.failures), like every other failure.
        train_keys = {job.key for job in plan.train_jobs}
        needs = {id(job): {r.key for r in (job.colorizer, job.sr) if r is not None} & train_keys
                 for job in plan.eval_jobs}
        # each pending task: its generator -> the jobs it runs, and which of them have reported
        pending = {train_remote.remote(job, rp.device, rp.workers, rp.train_threads, log_path): [job]
                   for job in plan.train_jobs}
        reported: dict[Any, set[int]] = {gen: set() for gen in pending}
        waiting = list(plan.eval_jobs)
        trained, evaluated = {}, {}

        def finish(job, value) -> None:
            is_train = isinstance(job, TrainJob)
            failed = value.get("failed") if is_train else next((r["failed"] for r in value if r.get("failed")), None)
            if failed:
                progress.fail(job, f"FAILED {job_label(job)}: {failed}")
            else:
                progress.done(job, _train_line(job, value) if is_train else f"evaluated {job_label(job)}")
            if is_train:
                trained[job.key] = value
            else:
                evaluated[id(job)] = value

        while pending or waiting:
            ready = []
            for job in [j for j in waiting if not needs[id(j)] - trained.keys()]:
                waiting.remove(job)
                broken = [trained[k] for k in needs[id(job)] if trained[k].get("failed")]
                if broken:
                    evaluated[id(job)] = guarded_eval(job, cache=plan.cache, trained=broken)  # rows, not run
                    progress.skip(f"not run: {job_label(job)} (needs a model whose training failed)")
                else:
                    ready.append(job)
            for group in _groups(ready, rp.eval_group):
                gen = eval_remote.remote(group, str(plan.cache), rp.device, rp.eval_threads, log_path)
                pending[gen], reported[gen] = group, set()
            if not pending:
                continue
            [gen], _ = ray.wait(list(pending), num_returns=1)
            jobs = pending[gen]
            try:
                value = ray.get(next(gen))
            except (ray.exceptions.RayError, StopIteration) as exc:  # the task died: a node, a worker, memory
                reason = f"Ray task failed: {_one_line(exc)} (Ray's logs: {logs})"
                for i, job in enumerate(jobs):
                    if i in reported[gen]:
                        continue
                    append_log(log_path, job_label(job), re.sub(r"\x1b\[[0-9;]*m", "", str(exc)))  # no colours
                    finish(job, failed_training(job, reason) if isinstance(job, TrainJob)
                           else failure_rows(job, reason))
                del pending[gen], reported[gen]
                continue
            if value == STARTED:
                for job in jobs:
                    progress.start(job)
                continue
            i, result = value
            reported[gen].add(i)
            finish(jobs[i], result)
            if len(reported[gen]) == len(jobs):
                del pending[gen], reported[gen]
        models = {model_key(job.model, job.scale): trained[job.key] for job in plan.train_jobs}
        return models, [row for job in plan.eval_jobs for row in evaluated[id(job)]]


def _nodes():
    """The alive nodes' CPUs and GPUs (ray_plan's facts)."""
    import ray

    nodes = [NodeFacts(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
             for n in ray.nodes() if n.get("Alive")]
    if not nodes:  # e.g. through Ray Client: the cluster as one node
        total = ray.cluster_resources()
        nodes = [NodeFacts(total.get("CPU", 0.0), total.get("GPU", 0.0))]
    return nodes


def _groups(jobs: list, size: int) -> list[list]:
    """Evaluations ready together, in tasks of at most ``size``; each task's jobs share a test set and scale
    (so a task reads one test set)."""
    by_set: dict[tuple, list] = {}
    for job in jobs:
        by_set.setdefault((job.test, job.scale), []).append(job)
    return [group[i:i + size] for group in by_set.values() for i in range(0, len(group), size)]


class _Progress:
    """One line per finished job, with the counts: zoo's view of the run instead of Ray's log lines."""

    def __init__(self, total: int, log: Callable[[str], Any]):
        self.total, self.log = total, log
        self.running: set[int] = set()
        self.done_n = self.failed = self.skipped = 0

    def start(self, job) -> None:
        self.running.add(id(job))

    def done(self, job, text: str) -> None:
        self.running.discard(id(job))
        self.done_n += 1
        self._line(text)

    def fail(self, job, text: str) -> None:  # a task can also fail before it starts (its node died)
        self.running.discard(id(job))
        self.failed += 1
        self._line(text)

    def skip(self, text: str) -> None:
        self.skipped += 1
        self._line(text)

    def _line(self, text: str) -> None:
        not_run = f", {self.skipped} not run" if self.skipped else ""
        self.log(f"  [{self.done_n}/{self.total} done, {len(self.running)} running, {self.failed} failed{not_run}] "
                 f"{text}")


def _train_line(job, info) -> str:
    status = "trained" if info["trained_now"] else "cached"
    return f"{status} {job.model} x{job.scale} ({job.steps} steps, {info['train_seconds'] or 0:.1f} s)"


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError carries the task's own exception
    text = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def make_executor(name: str, **kwargs):
    if name == "local":
        return LocalExecutor(**{k: v for k, v in kwargs.items() if k in ("device", "progress", "workers", "threads")})
    if name == "ray":
        return RayExecutor(**{k: v for k, v in kwargs.items() if k in (
            "address", "gpus_per_job", "num_cpus", "device", "workers", "timeout", "address_source")})
    raise ZooError(f"unknown executor '{name}' ({', '.join(EXECUTORS)})")
