"""Reproducibility records: command line, git commit, library versions and GPU in checkpoints and run.json."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess

import torch

from zoo.runtime import provenance

from helpers import REPO, run_zoo


def _head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_checkpoint_records_command_commit_and_versions(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "edsr", "--preset", "tiny", "--steps", "2", "--device", "cpu", "--out", str(out)]
    run_zoo(*args, check=True)
    env = json.loads((out / "model.json").read_text())["environment"]
    assert env["command"] == "zoo " + " ".join(args)
    assert env["git"]["commit"] == _head() and isinstance(env["git"]["dirty"], bool)
    assert set(env["packages"]) == {"torch", "torchvision", "timm", "numpy", "lpips", "pytorch-fid"}
    assert env["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert "cuda" not in env  # trained on the CPU


def test_a_bench_run_records_its_environment(bench_run):
    run_dir, _ = bench_run
    meta = json.loads((run_dir / "run.json").read_text())
    env = meta["environment"]
    assert env["git"]["commit"] == _head() and env["packages"]["torch"] == importlib.metadata.version("torch")
    checkpoint = meta["models"]["edsr@x2"]["checkpoint"]
    trained = json.loads(open(checkpoint[: -len(".safetensors")] + ".json").read())["environment"]
    assert trained["command"] == env["command"]  # the bench's command, also for what it trained


def test_gpu_details_are_recorded_for_cuda_devices(monkeypatch):
    assert provenance.gpu_info(torch.device("cpu")) is None and provenance.gpu_info(None) is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU 80GB")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    env = provenance.environment(torch.device("cuda:1"), command="zoo bench")
    assert env["cuda"] == {"cuda": "13.0", "cudnn": 91002, "gpu": "Test GPU 80GB", "gpu_count": 2}


def test_no_git_record_outside_a_checkout(tmp_path):
    assert provenance.git_state(tmp_path) is None


def test_command_lines():
    assert provenance.command_line(["/usr/bin/zoo", "run", "a b.png"]) == "zoo run 'a b.png'"
    assert provenance.command_line(["/x/zoo/__main__.py", "list"]) == "zoo list"


def test_a_bench_training_job_records_the_bench_command(tmp_path):
    # Ray runs jobs in worker processes with their own argv: the job carries the command line
    import torch

    from zoo.harness.jobs import TrainJob, run_train_job
    from zoo.training.settings import TrainSettings

    job = TrainJob(model="edsr", task="sr", preset="tiny", overrides={"scale": 2}, data="samples:train", scale=2,
                   settings=TrainSettings(steps=1, checkpoint_every=1, command="zoo bench --x"), key="k",
                   out_dir=str(tmp_path))
    run_train_job(job, device=torch.device("cpu"), progress=False, workers=0)
    assert json.loads((tmp_path / "model.json").read_text())["environment"]["command"] == "zoo bench --x"
