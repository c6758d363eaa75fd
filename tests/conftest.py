"""Shared test fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

# Tests must never see the user's own weights or caches: every run gets an empty TORCH_HOME and cache
# (tests that need weights build their own, see weights_fixture.py).
_SESSION_TMP = tempfile.mkdtemp(prefix="zoo-tests-")
atexit.register(shutil.rmtree, _SESSION_TMP, ignore_errors=True)
os.environ["TORCH_HOME"] = os.path.join(_SESSION_TMP, "torch-empty")
os.environ["ZOO_CACHE"] = os.path.join(_SESSION_TMP, "cache")
for _var in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_WEIGHTS_MIRROR"):
    os.environ.pop(_var, None)
# Nor the user's Ray clusters: no RAY_ADDRESS, and Ray's temp folder (its sessions, and the record of the
# last 'ray start' cluster) is the session's own.
os.environ.pop("RAY_ADDRESS", None)
os.environ["RAY_TMPDIR"] = os.path.join(_SESSION_TMP, "r")
# No test reaches the internet: downloads are off unless a test turns them on against its own loopback
# server (tests/test_download.py).
os.environ["ZOO_OFFLINE"] = "1"
# Nothing may reach the real Hugging Face Hub: its endpoint is a closed loopback port unless a test starts the
# stand-in (hub_server.py), and its cache and token file live in the session's directory (no user token sent).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = os.path.join(_SESSION_TMP, "hf-home")
os.environ["HF_HUB_CACHE"] = os.path.join(_SESSION_TMP, "hf-home", "hub")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
    os.environ.pop(_var, None)

# After the environment above: huggingface_hub reads some of it when first imported.
from hub_fixtures import bench_run, fake_hub, trained_checkpoints  # noqa: E402,F401  (loopback Hub, trained models)
from weights_fixture import test_torch_home, test_weights_dir  # noqa: E402,F401  (pretrained-file stand-ins)

# Under pytest-xdist each worker is one process on a 2-core machine: one intra-op thread each, or small
# convolutions slow down 10x or more from oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def registry_factory():
    """Build a registry from entry points plus in-test plugin objects, without installing anything."""
    from zoo.plugins.registry import load_registry

    def make(*plugins, entry_points=True):
        return load_registry(entry_points=entry_points,
                             plugins=[(getattr(p, "__name__", f"test-plugin-{i}"), p) for i, p in enumerate(plugins)])

    return make


@pytest.fixture
def dead_ray_cluster(monkeypatch):
    """``(RAY_TMPDIR, port)``: a Ray temp folder whose record of the last 'ray start' cluster names a loopback
    port nothing listens on, what a cluster that died without 'ray stop' leaves behind."""
    root = tempfile.mkdtemp(prefix="zr-")  # short: Ray's socket paths go under it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (Path(root) / "ray").mkdir()
    (Path(root) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    monkeypatch.setenv("RAY_TMPDIR", root)
    yield root, port
    shutil.rmtree(root, ignore_errors=True)
