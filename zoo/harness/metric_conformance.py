"""Conformance checks for metric plugins: what ``zoo check --metrics`` (or ``zoo check NAME``) runs.

A metric conforms when its entry meets :func:`zoo.plugins.contract.metric_problems` (it takes the
evaluation's settings, declares its direction and unit), ``build`` returns a :class:`zoo.Metric` whose info
agrees with that declaration, ``update``/``compute`` on a small batch give a :class:`zoo.MetricResult`
with a finite value, and :func:`zoo.create_metric` refuses a setting it does not have.
"""

from __future__ import annotations

import fnmatch
import math
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from zoo.errors import ZooError, one_line
from zoo.harness.conformance import CheckResult
from zoo.metrics.module import MetricModule
from zoo.plugins.metric_interface import Metric, MetricInfo, MetricResult, MetricUnavailable
from zoo.plugins.registry import get_registry

METRIC_CHECKS = ("contract", "build", "compute", "settings")
METRIC_CHECK_HELP = {
    "contract": "the entry meets zoo.plugins.contract (build takes the evaluation's settings; direction, unit)",
    "build": "build(shave=, device=, cache_dir=) returns a zoo.Metric whose info agrees with the registration",
    "compute": "update() on two image pairs, then compute(): a zoo.MetricResult with a finite value",
    "settings": "zoo.create_metric refuses a setting the metric does not have",
}


class _Skip(Exception):
    pass


def check_metric(entry, *, registry, device: torch.device, work: Path) -> list[CheckResult]:
    results = []
    built: list[Metric] = []

    def build():
        metric = entry.build(shave=0, device=device, cache_dir=work)
        info = getattr(metric, "info", None)
        assert isinstance(metric, Metric) or callable(getattr(metric, "update", None)), \
            f"build() returned {type(metric).__name__}, not a zoo.Metric"
        assert isinstance(info, MetricInfo), f"build() returned a metric whose info is {type(info).__name__}, " \
                                             "not a zoo.MetricInfo"
        assert info.higher_is_better == entry.higher_is_better, \
            f"info.higher_is_better={info.higher_is_better}, registered {entry.higher_is_better}"
        assert info.unit == entry.unit, f"info.unit={info.unit!r}, registered {entry.unit!r}"
        built.append(metric)
        return f"{type(metric).__name__}, convention {info.convention!r}"

    def compute():
        if not built:
            raise _Skip("build failed")
        metric = built[0]
        g = torch.Generator().manual_seed(0)
        for _ in range(2):
            target = torch.rand(1, 3, 48, 48, generator=g).to(device)
            pred = (target + 0.05 * torch.randn(1, 3, 48, 48, generator=g).to(device)).clamp(0, 1)
            metric.update(pred, target)
        result = metric.compute()
        assert isinstance(result, MetricResult), f"compute() returned {type(result).__name__}, not a zoo.MetricResult"
        assert result.value is not None and math.isfinite(result.value), f"compute() gave value {result.value!r}"
        return f"{result.value:.4g}"

    def settings():
        try:
            MetricModule(entry.name, registry=registry, device=device, cache_dir=work, zoo_check_no_such_setting=1)
        except ZooError as exc:
            if "no setting 'zoo_check_no_such_setting'" in str(exc):
                return "refused"
            raise
        raise AssertionError("a setting the metric does not have was accepted silently")

    for name, fn in (("build", build), ("compute", compute), ("settings", settings)):
        t0 = time.perf_counter()
        try:
            status, detail = "pass", fn()
        except (_Skip, MetricUnavailable) as exc:  # e.g. a weight file that is not here
            status, detail = "skip", str(exc)
        except AssertionError as exc:
            status, detail = "fail", str(exc)
        except Exception as exc:
            status, detail = "fail", one_line(exc)
        results.append(CheckResult(entry.name, name, status, str(detail or ""), round(time.perf_counter() - t0, 2)))
    return results


def check_metrics(patterns: Iterable[str] = ("*",), *, registry=None, device: str | torch.device = "cpu",
                  on_result=None) -> list[CheckResult]:
    """Check every registered metric matching the names or globs; metrics withdrawn at registration for
    breaking the contract are a failed ``contract`` check."""
    registry = registry or get_registry()
    device = torch.device(device)
    results: list[CheckResult] = []

    def add(batch):
        for r in batch:
            results.append(r)
            if on_result is not None:
                on_result(r)

    invalid = {n: why for n, why in registry.invalid.items() if "metric '" in why}
    with tempfile.TemporaryDirectory(prefix="zoo-check-metrics-") as tmp:
        for pattern in list(patterns) or ["*"]:
            withdrawn = [n for n in sorted(invalid) if fnmatch.fnmatchcase(n, pattern)]
            add(CheckResult(n, "contract", "fail", invalid[n]) for n in withdrawn)
            entries = registry.metrics(pattern)
            if not entries and not withdrawn:
                raise ZooError(f"no metric matches '{pattern}' (see 'zoo metrics')")
            for entry in entries:
                add([CheckResult(entry.name, "contract", "pass", entry.distribution)])
                add(check_metric(entry, registry=registry, device=device, work=Path(tmp)))
    return results
