"""Executors run a bench plan's jobs: training jobs first, then evaluation jobs that depend on them.

- ``local`` (default): in this process, one job at a time, in dependency order. No extra dependency.
- ``ray``: each job is a Ray task (``pip install 'zoo[ray]'``), on a local Ray instance or an existing cluster
  (``--address``). Evaluation tasks receive the training tasks' results as arguments, so Ray starts each one
  as soon as the models it needs are trained. With GPUs, each task asks for ``gpus_per_job`` of them.

Jobs are plain data and every artefact goes to the run directory and the cache, so both executors produce
the same numbers. On a cluster those two folders must be on storage every node sees (a shared filesystem):
the executor checks that from a worker before it schedules anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.failures import ERRORS_LOG

EXECUTORS = ("local", "ray")


class LocalExecutor:
    name = "local"

    def __init__(self, *, device: str | None = None, progress: bool = True, workers: int | None = None,
                 threads: int | None = None):
        # threads: intra-op threads for every job (None: torch's default). Float reductions round by thread
        # count, so threads=1 reproduces the Ray executor (one thread per task) to the last bit.
        self.device, self.progress, self.workers, self.threads = device, progress, workers, threads

    def run(self, plan, log: Callable[[str], Any]) -> tuple[dict[str, dict], list[dict]]:
        import torch

        from zoo.failures import guarded_eval, guarded_train

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
                models[f"{job.model}@x{job.scale}"] = by_key[job.key] = info
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
    import socket
    import tempfile

    for p in paths:
        try:
            Path(p).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=p, prefix=".zoo-probe-"):
                pass
        except OSError as exc:
            return f"worker {socket.gethostname()} cannot write {p}: {exc.strerror or exc}"
    return None


def _train_task(job, device, workers, threads, log_path):
    import torch

    from zoo.failures import guarded_train

    torch.set_num_threads(threads)
    return guarded_train(job, log_path=log_path, device=device, progress=False, workers=workers)


def _eval_task(job, cache, device, threads, log_path, *trained):
    # ``trained`` are the results of the training tasks this job depends on: Ray resolves them first.
    import torch

    from zoo.failures import guarded_eval

    torch.set_num_threads(threads)
    return guarded_eval(job, cache=Path(cache), log_path=log_path, trained=list(trained), device=device)


class RayExecutor:
    name = "ray"

    def __init__(self, *, address: str | None = None, gpus_per_job: float | None = None, num_cpus: int | None = None,
                 device: str | None = None, workers: int | None = 0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ZooError("the ray executor needs Ray: pip install 'zoo[ray]'") from None
        self.address, self.gpus_per_job, self.num_cpus = address, gpus_per_job, num_cpus
        self.device, self.workers = device, workers

    def _init(self):
        import ray

        if ray.is_initialized():
            return ray
        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                                  "log_to_driver": False, "configure_logging": False}
        if self.address:
            kwargs["address"] = self.address
        elif self.num_cpus:
            kwargs["num_cpus"] = self.num_cpus
        # Workers must import the same plugins as this process.
        kwargs["runtime_env"] = {"env_vars": {k: v for k, v in os.environ.items()
                                              if k.startswith("ZOO_") or k == "TORCH_HOME"}}
        ray.init(**kwargs)
        return ray

    def run(self, plan, log: Callable[[str], Any]) -> tuple[dict[str, dict], list[dict]]:
        ray = self._init()
        gpus = self.gpus_per_job
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        device = self.device or ("cuda" if gpus else "cpu")
        # One intra-op thread per task: Ray runs one task per CPU, so more would oversubscribe the cores.
        threads = 1
        problem = ray.get(ray.remote(_check_paths).remote([str(plan.run_dir.resolve()), str(plan.cache.resolve())]))
        if problem:
            raise ZooError(f"{problem}: on a cluster, --out and --cache must be on storage every node sees")
        train_remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_train_task)
        eval_remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_eval_task)
        log_path = str((plan.run_dir / ERRORS_LOG).resolve())
        train_refs = {job.key: train_remote.remote(job, device, self.workers, threads, log_path)
                      for job in plan.train_jobs}
        eval_refs = []
        for job in plan.eval_jobs:
            deps = [train_refs[r.key] for r in (job.colorizer, job.sr) if r is not None and r.key in train_refs]
            eval_refs.append(eval_remote.remote(job, str(plan.cache), device, threads, log_path, *deps))
        models = {}
        for job in plan.train_jobs:
            info = ray.get(train_refs[job.key])
            _log_train(log, job, info)
            models[f"{job.model}@x{job.scale}"] = info
        rows = [row for rows in ray.get(eval_refs) for row in rows]
        return models, rows


def make_executor(name: str, **kwargs):
    if name == "local":
        return LocalExecutor(**{k: v for k, v in kwargs.items() if k in ("device", "progress", "workers", "threads")})
    if name == "ray":
        return RayExecutor(**{k: v for k, v in kwargs.items()
                              if k in ("address", "gpus_per_job", "num_cpus", "device", "workers")})
    raise ZooError(f"unknown executor '{name}' ({', '.join(EXECUTORS)})")
