"""Local Ray overhead against the in-process executor: start-up, per-task cost, and the smoke suite.

    python benchmark/scripts/ray_overhead.py
"""

import tempfile
import time
from pathlib import Path

import ray

from zoo.harness.bench import run_bench
from zoo.harness.executors import RayExecutor
from zoo.harness.suite import load_suite
from zoo.plugins.registry import get_registry


def _smoke(executor=None) -> float:
    t0 = time.perf_counter()
    run_bench(load_suite("smoke"), registry=get_registry(), out=Path(tempfile.mkdtemp()),
              cache_dir=Path(tempfile.mkdtemp()), executor=executor, log=lambda *_: None)
    return time.perf_counter() - t0


def main() -> None:
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init = time.perf_counter() - t0
    noop = ray.remote(lambda: None)
    ray.get(noop.remote())
    t0 = time.perf_counter()
    ray.get([noop.remote() for _ in range(200)])
    per_task = (time.perf_counter() - t0) / 200
    ray.shutdown()
    local = _smoke()
    distributed = _smoke(RayExecutor(num_cpus=2, device="cpu"))
    print(f"ray.init {init:.1f} s; no-op task {per_task * 1000:.1f} ms each (200 tasks, 2 CPUs); smoke suite "
          f"cold: local {local:.1f} s, ray {distributed:.1f} s (includes ray.init)")


if __name__ == "__main__":
    main()
