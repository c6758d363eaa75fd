"""A bench job that raises becomes a failure record, so one broken model costs only its own rows.

The registry isolates a plugin that fails to load; this does the same for one that loads but fails to
build, train or evaluate. A failed training job is a record with ``failed`` set; every evaluation that
needs that model is not run and gets one row per metric marked ``failed`` with the reason; an evaluation
that raises gets the same rows. The traceback goes to ``errors.log`` in the run folder, nothing failed is
cached, and the leaderboard is written for everything else, so a rerun after a fix does only what failed.
"""

from __future__ import annotations

import os
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.errors import one_line
from zoo.harness.jobs import run_eval_job, run_train_job
from zoo.plugins.registry import get_registry
from zoo.store.runs import test_set_label

ERRORS_LOG = "errors.log"


def log_traceback(log_path: Path | str | None, title: str, exc: BaseException) -> None:
    append_log(log_path, title, "".join(traceback.format_exception(exc)))


def append_log(log_path: Path | str | None, title: str, text: str) -> None:
    if not log_path:
        return
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    # One write with O_APPEND: entries from parallel Ray workers do not interleave.
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # the umask decides
        try:
            os.write(fd, f"=== {stamp} {title}\n{text}\n".encode())
        finally:
            os.close(fd)
    except OSError:  # a full or read-only disk: the failure row still says what failed
        pass


def guarded_train(job, *, log_path=None, **kwargs) -> dict[str, Any]:
    """``run_train_job``, with an exception turned into a failure record (``failed``: the reason)."""
    try:
        return run_train_job(job, **kwargs)
    except Exception as exc:
        log_traceback(log_path, f"training {job.model} x{job.scale} (run {job.key})", exc)
        return failed_training(job, one_line(exc))


def failed_training(job, reason: str) -> dict[str, Any]:
    """The record of a training job that failed, in the shape of a finished one's."""
    return {"model": job.model, "key": job.key, "trained_now": False, "steps": 0, "train_seconds": None,
            "notes": [], "parameters": None, "checkpoint": None, "failed": reason}


def guarded_eval(job, *, cache, log_path=None, trained: list[dict] = (), **kwargs) -> list[dict[str, Any]]:
    """``run_eval_job``, or failed rows when a model it needs failed to train or the evaluation raises.

    ``trained`` are the records of the training jobs this evaluation depends on."""
    for info in trained:
        if info.get("failed"):
            return failure_rows(job, f"{info['model']} failed to train: {info['failed']}")
    try:
        return run_eval_job(job, cache=cache, **kwargs)
    except Exception as exc:
        log_traceback(log_path, f"evaluating {job_label(job)}", exc)
        return failure_rows(job, f"evaluation failed: {one_line(exc)}")


def job_label(job) -> str:
    """How progress lines and errors.log name a job: ``training edsr x2``, ``pipeline color-first a + b on T x2``."""
    if not hasattr(job, "stage"):  # a TrainJob
        return f"training {job.model} x{job.scale}"
    models = " + ".join(r.name for r in (job.colorizer, job.sr) if r is not None)
    order = f" {job.order}" if job.order else ""
    return f"{job.stage}{order} {models} on {job.test} x{job.scale}"


def failure_rows(job, reason: str) -> list[dict[str, Any]]:
    """One row per metric of ``job``, without a value, saying why."""
    registry = get_registry()
    rows = []
    for name in job.metrics:
        try:
            entry = registry.metric(name)
            higher, ranked, unit = entry.higher_is_better, entry.ranked, entry.unit
        except Exception:  # the failure may be this very metric
            higher, ranked, unit = True, True, ""
        rows.append({
            "stage": job.stage, "order": job.order, "test_set": test_set_label(job.test), "scale": job.scale,
            "colorizer": job.colorizer.name if job.colorizer else None, "sr": job.sr.name if job.sr else None,
            "n_images": 0, "images_per_second": None, "skipped": [], "metric": name, "value": None, "std": None,
            "n": 0, "higher_is_better": higher, "ranked": ranked, "unit": unit, "convention": "",
            "unavailable": None, "weights": {}, "failed": reason,
        })
    return rows


def failures(models: dict[str, dict], rows: list[dict]) -> list[str]:
    """One line per failed training and per failed evaluation (not per metric row)."""
    lines = [f"training {name}: {info['failed']}" for name, info in models.items() if info.get("failed")]
    seen = set()
    for r in rows:
        if r.get("failed") and "failed to train" not in r["failed"]:
            key = (r["stage"], r.get("order"), r.get("colorizer"), r.get("sr"), r["test_set"], r["scale"])
            if key not in seen:
                seen.add(key)
                names = " + ".join(n for n in (r.get("colorizer"), r.get("sr")) if n)
                lines.append(f"{r['stage']} {names} on {r['test_set']} x{r['scale']}: {r['failed']}")
    return lines
