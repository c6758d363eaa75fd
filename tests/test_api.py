"""The Python API (zoo.api): list_models, create_model, load, create_metric, bench."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import zoo
from zoo.errors import ZooError
from zoo.plugins.registry import get_registry


def test_list_models_globs_and_tasks():
    assert zoo.list_models("edsr*") == ["edsr", "edsr_dqe"]
    assert zoo.list_models(task="colorizer") == get_registry().names("colorizer")
    assert "bicubic" in zoo.list_models(task="sr") and "gray" not in zoo.list_models(task="sr")
    assert zoo.list_models() == sorted(zoo.list_models())
    assert zoo.list_models("nothing*") == []
    with pytest.raises(ZooError, match="unknown task 'video'"):
        zoo.list_models(task="video")


def test_create_model_builds_the_config_it_is_given():
    sr = zoo.create_model("edsr", preset="tiny", scale=4, blocks=2)
    assert isinstance(sr, zoo.SuperResolver) and isinstance(sr, torch.nn.Module) and not sr.training
    assert sr.scale == 4 and sr.zoo_meta["config"]["blocks"] == 2 and sr.zoo_meta["preset"] == "tiny"
    entry = get_registry().get("edsr")
    expected = entry.create("tiny", scale=4, blocks=2)
    assert sum(p.numel() for p in sr.parameters()) == sum(p.numel() for p in expected.parameters())
    assert zoo.create_model("edsr").zoo_meta["config"]["features"] == 64  # the paper's defaults
    assert isinstance(zoo.create_model("gray"), zoo.Colorizer)
    with pytest.raises(ZooError, match="no preset 'huge'"):
        zoo.create_model("edsr", preset="huge")
    with pytest.raises(ZooError, match="no setting 'n_blokcs'; did you mean 'blocks'"):
        zoo.create_model("edsr", n_blokcs=3)
    with pytest.raises(ZooError, match="'gray' is a colorizer: scale applies to SR models"):
        zoo.create_model("gray", scale=2)
    with pytest.raises(ZooError, match="unknown model 'edrs'; did you mean 'edsr'"):
        zoo.create_model("edrs")


def test_create_model_and_load_with_checkpoints(trained_checkpoints, tmp_path):
    path = trained_checkpoints["edsr"]
    x = torch.rand(1, 3, 16, 18)
    by_file = zoo.create_model("edsr", checkpoint=path)
    by_dir = zoo.create_model("edsr", checkpoint=path.parent)  # a training run folder
    loaded = zoo.load(path)
    with torch.no_grad():
        assert torch.equal(by_file(x), by_dir(x)) and torch.equal(by_file(x), loaded(x))
        assert not torch.equal(by_file(x), zoo.create_model("edsr", preset="tiny", scale=2)(x))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert loaded.zoo_meta["sha256"] == meta["sha256"] and loaded.zoo_meta["source"] == str(path)
    assert not loaded.training
    # repeating the checkpoint's config is fine; contradicting it is refused
    zoo.create_model("edsr", preset="tiny", scale=2, checkpoint=path)
    with pytest.raises(ZooError, match=r"blocks=2 \(checkpoint: 4\)"):
        zoo.create_model("edsr", blocks=2, checkpoint=path)
    with pytest.raises(ZooError, match="holds a 'edsr' model, not 'srgan'"):
        zoo.create_model("srgan", checkpoint=path)
    with pytest.raises(ZooError, match="checkpoint not found"):
        zoo.load(tmp_path / "nothing.safetensors")


def test_bench_run_folders_give_their_checkpoints(bench_run):
    run_dir, _ = bench_run
    trained = json.loads((run_dir / "run.json").read_text())["models"]["edsr@x2"]["checkpoint"]
    by_name = zoo.create_model("edsr", checkpoint=run_dir)
    assert by_name.zoo_meta["sha256"] == json.loads(open(trained[:-len(".safetensors")] + ".json").read())["sha256"]
    assert zoo.load(run_dir).zoo_meta["model"] == "edsr"  # the run trained one model: no name needed
    with pytest.raises(ZooError, match="has no trained 'srgan'"):
        zoo.create_model("srgan", checkpoint=run_dir)


def test_create_metric_scores_like_the_evaluation():
    from zoo.metrics.build import build_metric

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 24, 24, generator=gen)
    pred = (target + 0.05 * torch.randn(3, 3, 24, 24, generator=gen)).clamp(0, 1)
    psnr = zoo.create_metric("psnr", shave=2)
    assert isinstance(psnr, torch.nn.Module)
    reference = build_metric("psnr", shave=2)
    reference.update(pred, target)
    expected = reference.compute()
    scores = psnr(pred, target)  # per image, running totals untouched
    assert scores.shape == (3,) and scores.tolist() == expected.per_image
    assert psnr.compute().n == 0
    psnr.update(pred[:2], target[:2])
    psnr.update(pred[2:], target[2:])
    result = psnr.compute()
    assert result.value == pytest.approx(expected.value, abs=1e-12) and result.n == 3
    psnr.reset()
    assert psnr.compute().n == 0
    # the metadata the boards show
    entry = get_registry().metric("psnr")
    assert psnr.higher_is_better is entry.higher_is_better is True and psnr.unit == entry.unit == "dB"
    assert psnr.convention == "Y BT.601, shave=2, uint8" == psnr.info.convention
    assert zoo.create_metric("ssim", shave=4, quantize=False).convention == "Y BT.601, shave=4, float"
    assert "psnr" in repr(psnr) and "shave=2" in repr(psnr)


def test_create_metric_refuses_unknown_names_and_settings():
    with pytest.raises(ZooError, match="unknown metric 'psnrr'; did you mean 'psnr'"):
        zoo.create_metric("psnrr")
    with pytest.raises(ZooError, match="metric 'psnr' has no setting 'shaev'"):
        zoo.create_metric("psnr", shaev=4)
    with pytest.raises(zoo.MetricUnavailable, match="alexnet"):  # no pretrained weights in the tests
        zoo.create_metric("lpips")


def test_set_metrics_have_no_per_image_scores(test_torch_home):
    kid = zoo.create_metric("kid", subset_size=2, subsets=3)
    x = torch.rand(4, 3, 32, 32)
    with pytest.raises(ZooError, match="scores a set of images"):
        kid(x, x.flip(0))
    kid.update(x, x.flip(0))
    assert kid.compute().n == 4


def test_bench_returns_the_rows_the_cli_writes(bench_run):
    run_dir, table = bench_run
    assert isinstance(table, pd.DataFrame) and table.attrs["run_dir"] == str(run_dir)
    written = pd.read_csv(run_dir / "results.csv")
    assert table.to_csv(index=False) == written.to_csv(index=False)
    assert set(table.sr.dropna()) == {"bicubic", "edsr"} and set(table.colorizer.dropna()) == {"gray"}
    assert {"value", "metric", "convention", "higher_is_better", "unit"} <= set(table.columns)
    # a metric from zoo.create_metric carries the metadata its column has on the boards
    row = table[(table.stage == "sr") & (table.metric == "ssim")].iloc[0]
    ssim = zoo.create_metric("ssim", shave=int(row.scale))
    assert (ssim.convention, ssim.higher_is_better) == (row.convention, bool(row.higher_is_better))
    with pytest.raises(ZooError, match="no option 'stpes'"):
        zoo.bench(suite="smoke", stpes=3)


def test_namespace_lists_the_api():
    for name in ("list_models", "create_model", "load", "create_metric", "bench"):
        assert name in zoo.__all__ and callable(getattr(zoo, name))
    from zoo import api
    from zoo.harness import bench  # the module has another name, so importing it cannot shadow the function

    assert zoo.bench is api.bench and bench.run_bench
    with pytest.raises(AttributeError):
        _ = zoo.not_a_name
