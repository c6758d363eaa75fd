"""`--executor ray` and the Ray it runs on: dead, silent and live clusters, failed jobs. Real Ray, loopback only.

The bench itself under Ray (a dead cluster's record, identical numbers) is in test_bench.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import ZooError

from helpers import run_zoo

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'zoo[ray]')")
pytestmark = pytest.mark.slow


def _bench(*args: str, tmp_path: Path, env: dict | None = None):
    t0 = time.monotonic()
    proc = run_zoo("bench", "--suite", "smoke", "--executor", "ray", "--out", str(tmp_path / "run"),
                   "--cache", str(tmp_path / "cache"), *args, env=env)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("how", ["--address", "auto", "RAY_ADDRESS"])
def test_a_dead_cluster_is_reported_in_one_line_at_once(how, dead_ray_cluster, tmp_path):
    ray_tmp, port = dead_ray_cluster
    dead = f"127.0.0.1:{port}"
    args = {"--address": ["--address", dead], "auto": ["--address", "auto"], "RAY_ADDRESS": []}[how]
    # a long --ray-timeout: the refused connection, not the timeout, is what ends the attempt
    proc, seconds = _bench(*args, "--ray-timeout", "600", tmp_path=tmp_path,
                           env={"RAY_ADDRESS": dead} if how == "RAY_ADDRESS" else None)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("zoo: error: "), proc.stderr
    assert f"nothing listens at {dead}" in proc.stderr
    assert {"--address": f"--address {dead}", "auto": f"{ray_tmp}/ray/ray_current_cluster",
            "RAY_ADDRESS": f"RAY_ADDRESS={dead}"}[how] in proc.stderr
    assert ("pass --address local" if how == "RAY_ADDRESS" else "leave --address out") in proc.stderr
    assert seconds < 60, seconds  # the CLI's start-up (torch, ray imports) is most of it, seconds on a busy machine
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_the_check_of_a_dead_address_takes_no_time(dead_ray_cluster):
    from zoo.harness.raycluster import check, resolve

    _, port = dead_ray_cluster
    t0 = time.monotonic()
    with pytest.raises(ZooError, match=f"nothing listens at 127.0.0.1:{port}"):
        check(resolve("auto"), timeout=600)
    assert time.monotonic() - t0 < 2


def test_a_gcs_that_never_answers_is_given_up_after_ray_timeout(tmp_path):
    from zoo.harness.raycluster import check, resolve

    # A listening socket that never accepts: connections complete in the kernel, gRPC never gets an answer.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        proc, seconds = _bench("--address", f"127.0.0.1:{port}", "--ray-timeout", "2", tmp_path=tmp_path)
        t0 = time.monotonic()
        with pytest.raises(ZooError, match="within 2 s"):
            check(resolve(f"127.0.0.1:{port}"), timeout=2)
        checked = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"zoo: error: --address 127.0.0.1:{port}: no Ray GCS answered at 127.0.0.1:{port} " \
                          "within 2 s (--ray-timeout)\n"
    assert 2 <= seconds < 60, seconds
    assert 2 <= checked < 4, checked  # the bound, not Ray's own retries (minutes)
    assert not (tmp_path / "cache").exists()


def test_address_local_is_a_private_instance_whatever_ray_address_says(dead_ray_cluster, monkeypatch):
    """--address local (the CLI passes it through) ignores RAY_ADDRESS and Ray's record; the instance is
    stopped at the end."""
    import ray

    from zoo.harness.raycluster import ray_session

    _, port = dead_ray_cluster
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with ray_session("local", num_cpus=1) as session:
        host, gcs_port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
        assert int(gcs_port) != port
        assert session.description.startswith("a private Ray instance (1 node, 1 CPUs, 0 GPUs)")
        assert Path(session.logs).is_dir()
    assert not ray.is_initialized()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(gcs_port)), timeout=5).close()


_HEAD = """
import sys, ray
ctx = ray.init(address="local", num_cpus=1, include_dashboard=False)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test closes stdin
"""


@pytest.fixture
def live_cluster(dead_ray_cluster):
    """A running Ray head on this machine, recorded where 'ray start' records it (the record of the dead
    cluster is replaced, as 'ray start' replaces it). Yields its GCS address."""
    ray_tmp, _ = dead_ray_cluster
    head = subprocess.Popen([sys.executable, "-c", _HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        gcs = head.stdout.readline().strip()
        assert gcs, "the Ray head did not start"
        (Path(ray_tmp) / "ray" / "ray_current_cluster").write_text(gcs)
        yield gcs, head
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def test_auto_attaches_to_a_running_cluster_and_reports_a_failed_job(live_cluster, tmp_path):
    """--address auto uses the recorded cluster; a job that fails becomes failed rows (zoo.harness.failures) with its
    traceback in errors.log, the evaluation that needed its model is not run, and the cluster is left running."""
    import ray

    from zoo.harness.bench import plan_bench
    from zoo.harness.executors import RayExecutor
    from zoo.harness.suite import load_suite
    from zoo.plugins.registry import get_registry

    gcs, head = live_cluster
    plan = plan_bench(load_suite("smoke"), registry=get_registry(), run_dir=tmp_path / "run",
                      cache=tmp_path / "cache")
    (tmp_path / "run").mkdir()
    broken = next(j for j in plan.train_jobs if j.model == "unet_vae")
    broken.data = str(tmp_path / "no-such-folder")
    plan.train_jobs = [broken]
    plan.eval_jobs = [j for j in plan.eval_jobs if j.stage == "colorizer" and j.colorizer.name in ("gray", "unet_vae")]
    lines = []
    models, rows = RayExecutor(address="auto", device="cpu").run(plan, lines.append)
    assert lines[0].startswith(f"  ray: --address auto ({gcs}, recorded by 'ray start'")
    assert "1 node, 1 CPUs" in lines[0]
    failed = models["unet_vae@x2"]["failed"]
    assert failed.startswith("data set ") and "no-such-folder" in failed
    by_model = {}
    for r in rows:
        by_model.setdefault(r["colorizer"], []).append(r)
    assert all(r["value"] is None and "unet_vae failed to train" in r["failed"] for r in by_model["unet_vae"])
    assert any(r["value"] is not None for r in by_model["gray"]) and not any(r.get("failed") for r in by_model["gray"])
    report = (tmp_path / "run" / "errors.log").read_text()
    assert "in resolve_dataset" in report and "zoo.errors.ZooError: data set" in report and "\x1b" not in report
    assert any("FAILED training unet_vae x2" in line for line in lines)
    assert any("not run: colorizer unet_vae on samples:test x2" in line for line in lines)
    assert any("evaluated colorizer gray" in line for line in lines)
    assert lines[-1].startswith("  [1/3 done, 0 running, 1 failed, 1 not run]")
    assert not ray.is_initialized() and head.poll() is None  # disconnected; the cluster still runs
    host, port = gcs.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=5).close()


def test_an_explicit_address_to_a_token_cluster_says_how_to_authenticate(live_cluster, tmp_path, monkeypatch):
    # Ray uses this machine's token by itself only for a cluster it finds (auto), never for a given address.
    gcs, _ = live_cluster
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    proc, seconds = _bench("--address", gcs, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"zoo: error: --address {gcs}: the cluster asks for a token: set RAY_AUTH_MODE=token " \
                          "and give its token in ~/.ray/auth_token or $RAY_AUTH_TOKEN\n"
    assert seconds < 60 and not (tmp_path / "cache").exists()
