"""`zoo eval`: the field's SR convention against published numbers, bad files, checkpoints, weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from zoo.data.datasets import resolve_dataset
from zoo.errors import ZooError
from zoo.harness.evaluate import evaluate, load_model

from helpers import run_zoo, shared_set

CPU = torch.device("cpu")

# Bicubic rows of the EDSR / SRCNN tables: (set, scale) -> (Y-PSNR, Y-SSIM or None)
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, None), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, None), ("Set14", 4): (26.00, 0.7027),
}


@pytest.mark.parametrize("name,scale", sorted(PUBLISHED))
def test_bicubic_reproduces_published_numbers(name, scale):
    data = resolve_dataset(str(shared_set(name)))
    sr = load_model("bicubic", "sr", scale=scale, device=CPU)
    report = evaluate(dataset=data, scale=scale, device=CPU, sr=sr, metrics=["psnr", "ssim"])
    psnr, ssim = (r.value for r in report.results)
    want_psnr, want_ssim = PUBLISHED[(name, scale)]
    assert abs(psnr - want_psnr) < 0.02, (name, scale, psnr)
    if want_ssim is not None:
        assert abs(ssim - want_ssim) < 0.002, (name, scale, ssim)
    assert report.results[0].info.convention == f"Y BT.601, shave={scale}, uint8"


def test_cli_json_and_corrupt_image_is_skipped_and_named(tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(shared_set("Set5"), folder)
    good = (folder / "bird.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "notes.png").write_text("not an image")
    proc = run_zoo("eval", "--sr", "bicubic", "--data", str(folder), "--scale", "2", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["n_images"] == 5
    assert any("broken" in s and "truncated" in s for s in report["skipped"] + [proc.stderr])
    assert "notes.png" in proc.stderr and "Traceback" not in proc.stderr
    psnr = next(m for m in report["metrics"] if m["metric"] == "psnr")
    assert abs(psnr["value"] - 33.66) < 0.02 and psnr["higher_is_better"] is True


def test_a_repeated_metrics_option_adds_up_and_the_default_stays():
    # `--metrics a --metrics b` once kept only b, silently
    def names(*extra):
        proc = run_zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--scale", "2", "--json", *extra,
                       check=True)
        return [m["metric"] for m in json.loads(proc.stdout)["metrics"]]

    assert names("--metrics", "psnr", "--metrics", "ssim,psnr_rgb") == ["psnr", "ssim", "psnr_rgb"]
    assert names() == ["psnr", "ssim"]


def test_missing_weights_mark_metrics_unavailable_and_the_rest_completes():
    proc = run_zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--scale", "4",
                   "--metrics", "psnr,ssim,lpips,fid,kid", check=True)
    out = proc.stdout
    assert "psnr" in out and "n/a [1]" in out and "n/a [3]" in out
    assert "alexnet-owt-7be5be79.pth" in out and "pt_inception-2015-12-05-6726825d.pth" in out


def test_all_metrics_with_test_weights(test_torch_home):
    data = resolve_dataset("samples:test")
    sr = load_model("bicubic", "sr", scale=4, device=CPU)
    report = evaluate(dataset=data, scale=4, device=CPU, sr=sr, metrics=["psnr", "ssim", "lpips", "fid", "kid"])
    by = {r.info.name: r for r in report.results}
    assert all(r.available for r in by.values()), {k: r.unavailable for k, r in by.items()}
    assert by["lpips"].value > 0 and by["fid"].value > 0
    assert "alexnet-owt-7be5be79.pth" in by["lpips"].weights
    assert "pt_inception-2015-12-05-6726825d.pth" in by["fid"].weights


def test_trained_checkpoint_is_scored_and_mismatches_are_refused(tmp_path):
    from zoo.plugins.registry import get_registry
    from zoo.training.loop import train

    entry = get_registry().get("edsr")
    cfg = entry.make_config("tiny", {"scale": 2})
    result = train(entry, cfg, resolve_dataset("samples:train"), steps=3, out_dir=tmp_path / "run", device=CPU,
                   data_scale=2, workers=0, progress=False)
    proc = run_zoo("eval", "--sr", str(result.checkpoint), "--data", "samples:test", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["scale"] == 2 and report["models"]["sr"].startswith("edsr (")
    with pytest.raises(ZooError, match="upscales x2, but --scale is 4"):
        load_model(str(result.checkpoint), "sr", scale=4, device=CPU)
    with pytest.raises(ZooError, match="is a sr model, not a colorizer"):
        load_model(str(result.checkpoint), "colorizer", scale=2, device=CPU)
    with pytest.raises(ZooError, match="has to be trained first"):
        load_model("edsr", "sr", scale=2, device=CPU)


def test_pipeline_orders_and_colorizer_alone():
    data = resolve_dataset("samples:test")
    gray = load_model("gray", "colorizer", scale=2, device=CPU)
    sr = load_model("bicubic", "sr", scale=2, device=CPU)
    col_only = evaluate(dataset=data, scale=2, device=CPU, colorizer=gray, metrics=["psnr_rgb", "colorfulness"])
    assert col_only.mode == "colorizer" and col_only.results[0].info.convention.startswith("RGB, shave=0")
    # A gray output has (almost) no colour at all.
    assert col_only.results[1].value < 1.0
    first = evaluate(dataset=data, scale=2, device=CPU, colorizer=gray, sr=sr, metrics=["psnr"])
    second = evaluate(dataset=data, scale=2, device=CPU, colorizer=gray, sr=sr, metrics=["psnr"], order="sr-first")
    assert first.mode == second.mode == "pipeline"
    # Both orders keep only the lightness; they differ only in rounding order, not by much.
    assert abs(first.results[0].value - second.results[0].value) < 0.5
