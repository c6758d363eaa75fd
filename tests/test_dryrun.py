"""`zoo bench --dry-run` from the command line and its timing rule (test_bench.py checks that the plan is what
the real run then does)."""

from __future__ import annotations

import pytest

from zoo.harness import dryrun
from zoo.plugins.registry import get_registry
from zoo.training.settings import TrainSettings

from helpers import run_zoo


def test_dry_run_from_the_command_line_writes_nothing(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    proc = run_zoo("bench", "--suite", "smoke", "--dry-run", "--colorizer", "gray", "--sr", "bicubic",
                   "--cache", str(cache), "--out", str(out), check=True)
    assert "dry run of bench 'smoke' on cpu: nothing is trained, evaluated or written" in proc.stdout
    assert "plan: 0 training jobs (0 cached, 0 to resume, 0 to train), 3 evaluations (0 cached, 3 to run)" in \
        proc.stdout
    assert not cache.exists() and not out.exists()


def test_timing_rule_times_slow_steps_fewer_times(monkeypatch):
    """Warm-up, then up to MAX_TIMED steps; MIN_TIMED once past the budget; one when the warm-up alone is."""
    from types import SimpleNamespace

    import torch

    from zoo.harness.jobs import TrainJob

    clock = {"t": 0.0, "step": 0.0}
    monkeypatch.setattr(dryrun.time, "perf_counter", lambda: clock["t"])

    def fake_step(self, batch, stage, step):
        clock["t"] += clock["step"]
        return {}

    entry = get_registry().get("edsr")
    monkeypatch.setattr(entry.recipe, "training_step", fake_step)
    reg = SimpleNamespace(get=lambda name, task=None: entry)
    job = TrainJob("edsr", "sr", "tiny", {"scale": 2}, "samples:train", 2, TrainSettings(steps=100))
    timed = {}
    for seconds in (0.01, 4.0, 30.0):
        clock["step"] = seconds
        est = dryrun.TrainEstimate(job, 0)
        dryrun.measure(est, registry=reg, device=torch.device("cpu"))
        assert est.error is None, est.error
        timed[seconds] = est.stages[0].timed
        assert est.stages[0].compute_s == pytest.approx(seconds)
    assert timed == {0.01: dryrun.MAX_TIMED, 4.0: dryrun.MIN_TIMED, 30.0: 1}
