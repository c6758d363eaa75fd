"""Checkpoints by Hub name (hf-hub:ORG/REPO) and `zoo push`, against the loopback Hub (hub_server.py)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import ZooError
from zoo.store.locate import locate

from helpers import run_zoo
from hub_fixtures import publish


def _x():
    return torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))


def test_hub_name_gives_the_outputs_of_the_local_file_downloaded_once(fake_hub, trained_checkpoints):
    local = trained_checkpoints["edsr"]
    commit = publish(fake_hub, "test/edsr-tiny", local)
    from_hub = zoo.create_model("edsr", checkpoint="hf-hub:test/edsr-tiny")
    with torch.no_grad():
        assert torch.equal(from_hub(_x()), zoo.load(local)(_x()))
    assert from_hub.zoo_meta["source"] == "hf-hub:test/edsr-tiny" and from_hub.zoo_meta["model"] == "edsr"
    assert isinstance(zoo.load("hf-hub:test/edsr-tiny"), zoo.SuperResolver)
    # a pinned revision and the branch resolve to the same cached files
    zoo.create_model("edsr", checkpoint=f"hf-hub:test/edsr-tiny@{commit}")
    assert fake_hub.gets("model.safetensors") == 1 and fake_hub.gets("model.json") == 1
    cached = list((fake_hub_cache() / "models--test--edsr-tiny" / "snapshots" / commit).iterdir())
    assert sorted(p.name for p in cached) == ["model.json", "model.safetensors"]


def fake_hub_cache():
    from pathlib import Path

    return Path(os.environ["HF_HUB_CACHE"])


def test_offline_a_cached_name_loads_and_an_uncached_one_is_one_line(fake_hub, trained_checkpoints, monkeypatch):
    publish(fake_hub, "test/edsr-tiny", trained_checkpoints["edsr"])
    zoo.create_model("edsr", checkpoint="hf-hub:test/edsr-tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(fake_hub.requests)
    assert zoo.create_model("edsr", checkpoint="hf-hub:test/edsr-tiny").zoo_meta["model"] == "edsr"
    assert len(fake_hub.requests) == before  # nothing asked of the Hub
    with pytest.raises(ZooError, match="not in the local Hub cache .* HF_HUB_OFFLINE is set") as err:
        zoo.create_model("edsr", checkpoint="hf-hub:test/never-downloaded")
    assert "\n" not in str(err.value)
    # the CLI says the same in one line, exit code 2
    proc = run_zoo("eval", "--sr", "hf-hub:test/never-downloaded", "--data", "samples:test")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "not in the local Hub cache" in proc.stderr


def test_unreachable_hub_still_loads_a_cached_name(fake_hub, trained_checkpoints, monkeypatch):
    publish(fake_hub, "test/edsr-tiny", trained_checkpoints["edsr"])
    zoo.create_model("edsr", checkpoint="hf-hub:test/edsr-tiny")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # connection refused
    assert zoo.create_model("edsr", checkpoint="hf-hub:test/edsr-tiny").zoo_meta["model"] == "edsr"
    # huggingface_hub retries an unreachable Hub five times (about 20 s of sleeps) before giving up
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda s: None)
    with pytest.raises(ZooError, match="not in the local Hub cache .* cannot be reached"):
        zoo.load("hf-hub:test/other")


def test_hub_checkpoints_are_loaded_with_the_strict_rules(fake_hub, trained_checkpoints):
    edsr = trained_checkpoints["edsr"]
    meta = json.loads(edsr.with_suffix(".json").read_text())
    publish(fake_hub, "test/misfit", edsr, meta_changes={"config": {**meta["config"], "features": 32}})
    with pytest.raises(ZooError, match="does not fit model config"):
        zoo.create_model("edsr", checkpoint="hf-hub:test/misfit")
    publish(fake_hub, "test/alien", edsr, meta_changes={"model": "not_registered_here"})
    with pytest.raises(ZooError, match="which is not registered here"):
        zoo.load("hf-hub:test/alien")
    damaged = bytearray(edsr.read_bytes())
    damaged[-1] ^= 1
    publish(fake_hub, "test/damaged", edsr, files={"model.safetensors": bytes(damaged)})
    with pytest.raises(ZooError, match="sha256 differs"):
        zoo.load("hf-hub:test/damaged")
    fake_hub.add_files("test/pickles", {"pytorch_model.bin": b"\x80\x04pickle", "config.json": b"{}"})
    with pytest.raises(ZooError, match="not a zoo checkpoint"):
        zoo.load("hf-hub:test/pickles")
    with pytest.raises(ZooError, match="no such repository"):
        zoo.load("hf-hub:test/missing")
    with pytest.raises(ZooError, match="not a Hub name"):
        zoo.load("hf-hub:no-slash")
    publish(fake_hub, "test/edsr-tiny", edsr)
    with pytest.raises(ZooError, match="holds a 'edsr' model, not 'srgan'"):
        zoo.create_model("srgan", checkpoint="hf-hub:test/edsr-tiny")
    with pytest.raises(ZooError, match="scale=4 .checkpoint: 2."):
        zoo.create_model("edsr", scale=4, checkpoint="hf-hub:test/edsr-tiny")


def _photos(folder):
    from zoo.data.datasets import resolve_dataset

    folder.mkdir()
    Image.open(resolve_dataset("samples:test")[0].path).convert("RGB").resize((40, 30)).save(folder / "p.png")
    return folder


def test_zoo_run_and_eval_with_hub_names(fake_hub, trained_checkpoints, tmp_path):
    publish(fake_hub, "test/edsr-tiny", trained_checkpoints["edsr"])
    publish(fake_hub, "test/unet-tiny", trained_checkpoints["unet_vae"])
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": os.environ["HF_HUB_CACHE"]}
    photos, out = _photos(tmp_path / "photos"), tmp_path / "out"
    proc = run_zoo("run", "--colorizer", "hf-hub:test/unet-tiny", "--sr", "hf-hub:test/edsr-tiny", str(photos),
                   "-o", str(out), env=env, check=True)
    assert "1 written" in proc.stdout
    assert Image.open(out / "p.png").size == (80, 60)  # x2, the scale read from the checkpoint
    report = json.loads(run_zoo("eval", "--sr", "hf-hub:test/edsr-tiny", "--data", "samples:test", "--json",
                                env=env, check=True).stdout)
    assert report["scale"] == 2 and report["models"]["sr"] == "edsr (hf-hub:test/edsr-tiny)"


def test_zoo_push_uploads_weights_json_and_card_that_load_back(fake_hub, bench_run, tmp_path):
    run_dir, table = bench_run
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": os.environ["HF_HUB_CACHE"]}
    proc = run_zoo("push", str(run_dir), "test/pushed", "--model", "edsr", "--private",
                   env={**env, "HF_TOKEN": "hf_test_token"}, check=True)
    assert "pushed to test/pushed" in proc.stdout
    assert set(fake_hub.auth) == {"Bearer hf_test_token"}  # the token, on every request
    created = [(c["organization"], c["name"], c["visibility"]) for c in fake_hub.created]
    assert created == [("test", "pushed", "private")]
    [commit] = fake_hub.commits
    assert commit["repo"] == "test/pushed" and sorted(commit["files"]) == ["README.md", "model.json",
                                                                          "model.safetensors"]
    checkpoint = locate(run_dir, model="edsr")
    assert commit["files"]["model.safetensors"] == checkpoint.read_bytes()
    meta = json.loads(commit["files"]["model.json"])
    assert meta["model"] == "edsr" and meta["config"]["scale"] == 2 and meta["data"]  # data fingerprint
    assert meta["versions"]["zoo"] == zoo.__version__
    assert meta["versions"][meta["distribution"]] == meta["plugin_version"]
    assert meta["pushed"]["repo"] == "test/pushed"
    sr_rows = table[(table.stage == "sr") & (table.sr == "edsr") & table.value.notna()]
    reached = {m["metric"]: m["value"] for m in meta["metrics"]}
    assert reached == dict(zip(sr_rows.metric, sr_rows.value))
    card = commit["files"]["README.md"].decode()
    assert card.startswith("---\nlibrary_name: zoo\n") and "- super-resolution" in card
    assert 'zoo.create_model("edsr", checkpoint="hf-hub:test/pushed")' in card
    assert f"{reached['psnr']:.4f} dB" in card and meta["data"] in card and meta["sha256"] in card
    # what was pushed loads back by name, with the weights of the run
    model = zoo.create_model("edsr", checkpoint="hf-hub:test/pushed")
    with torch.no_grad():
        assert torch.equal(model(_x()), zoo.load(checkpoint)(_x()))
    assert model.zoo_meta["metrics"] == meta["metrics"]


def test_zoo_push_out_writes_the_files_and_uploads_nothing(fake_hub, trained_checkpoints, tmp_path):
    out = tmp_path / "repo"
    proc = run_zoo("push", str(trained_checkpoints["unet_vae"]), "me/unet", "-o", str(out),
                   env={"HF_ENDPOINT": fake_hub.url}, check=True)
    assert "nothing uploaded" in proc.stdout and fake_hub.requests == []
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    assert "- image-colorization" in card and "Not evaluated" in card
    bad = run_zoo("push", str(trained_checkpoints["unet_vae"]), "not a repo", "-o", str(out))
    assert bad.returncode == 2 and "ORG/REPO" in bad.stderr


def test_push_to_a_hub_that_refuses_is_one_line(trained_checkpoints, tmp_path):
    # HF_ENDPOINT from conftest: a closed port
    proc = run_zoo("push", str(trained_checkpoints["edsr"]), "test/x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "cannot push" in proc.stderr
