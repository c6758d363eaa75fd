"""Fixtures for Hub tests: the loopback Hub (``fake_hub``) and checkpoints trained by the real loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub_server import FakeHub


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A Hub stand-in on 127.0.0.1 that this test's ``HF_ENDPOINT`` points at, with an empty Hub cache."""
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def trained_checkpoints(tmp_path_factory):
    """``{"edsr": path, "unet_vae": path}``: tiny presets trained for 3 steps by zoo.training.loop (x2 data)."""
    import torch

    from zoo.data.datasets import resolve_dataset
    from zoo.plugins.registry import get_registry
    from zoo.training.loop import train

    root = tmp_path_factory.mktemp("trained")
    out = {}
    for name, overrides in (("edsr", {"scale": 2}), ("unet_vae", {})):
        entry = get_registry().get(name)
        result = train(entry, entry.make_config("tiny", overrides), resolve_dataset("samples:train"), steps=3,
                       out_dir=root / name, device=torch.device("cpu"), data_scale=2, workers=0, progress=False,
                       checkpoint_every=3, extra_meta={"preset": "tiny"})
        out[name] = Path(result.checkpoint)
    return out


def publish(hub: FakeHub, repo: str, checkpoint: Path, *, meta_changes: dict | None = None,
            files: dict[str, bytes] | None = None) -> str:
    """Put a checkpoint's two files (the JSON optionally changed) into ``repo`` on the stand-in Hub."""
    meta = json.loads(Path(checkpoint).with_suffix(".json").read_text())
    meta.update(meta_changes or {})
    content = {"model.safetensors": Path(checkpoint).read_bytes(), "model.json": json.dumps(meta).encode()}
    content.update(files or {})
    return hub.add_files(repo, {k: v for k, v in content.items() if v is not None})


@pytest.fixture(scope="session")
def bench_run(tmp_path_factory):
    """``(run_dir, table)`` of ``zoo.bench`` on the smoke suite with one trained model (edsr) and the baselines."""
    import zoo

    root = tmp_path_factory.mktemp("bench")
    table = zoo.bench(suite="smoke", colorizers=["gray"], srs=["edsr"], steps=3, out=root / "run",
                      cache=root / "cache", workers=0)
    return root / "run", table
