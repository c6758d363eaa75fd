"""`zoo bench` end to end on the smoke suite: train once, cache, resume, retrain only what changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from zoo.harness.bench import run_bench
from zoo.harness.suite import load_suite
from zoo.plugins.registry import get_registry
from zoo.store.runs import read_run

from helpers import REPO, quiet_local, run_zoo

pytestmark = pytest.mark.slow


def _values(run_dir: Path) -> dict[tuple, float | None]:
    _, rows = read_run(run_dir)
    return {(r["stage"], r["order"], r["colorizer"], r["sr"], r["test_set"], r["metric"]): r["value"] for r in rows}


@pytest.fixture(scope="module")
def smoke():
    return load_suite("smoke")


@pytest.fixture(scope="module")
def dry_before(smoke, tmp_path_factory):
    """``(report, log lines, cache, out)``: --dry-run against the empty cache the first run then fills."""
    from zoo.harness import dryrun

    cache = tmp_path_factory.mktemp("cache") / "zoo"
    out = tmp_path_factory.mktemp("runs") / "first"
    lines = []
    before, dryrun.MAX_TIMED = dryrun.MAX_TIMED, 2  # the timing rule is tested elsewhere: keep it short
    try:
        report = dryrun.dry_run(smoke, registry=get_registry(), out=out, cache_dir=cache, log=lines.append)
    finally:
        dryrun.MAX_TIMED = before
    assert not cache.exists() and not out.exists()  # it wrote nothing: no cache, no run folder
    return report, lines, cache, out


@pytest.fixture(scope="module")
def first_run(smoke, dry_before):
    _, _, cache, out = dry_before
    result = run_bench(smoke, registry=get_registry(), out=out, cache_dir=cache, **quiet_local())
    return result, cache


def test_grid_trains_c_plus_s_models_and_writes_outputs(first_run, smoke):
    result, _ = first_run
    trainable_c = [n for n in smoke.colorizers if get_registry().get(n).trainable]
    trainable_s = [n for n in smoke.sr if get_registry().get(n).trainable]
    assert len(trainable_c) == 2 and len(trainable_s) == 2
    assert result.train_jobs == result.trained == 4  # C + S, not C x S
    run = result.run_dir
    md = (run / "leaderboard.md").read_text()
    for name in ("gray", "bicubic", *trainable_c, *trainable_s):
        assert re.search(rf"\| {re.escape(name)}\s", md), name
    meta, rows = read_run(run)
    pipelines = {(r["colorizer"], r["sr"]) for r in rows if r["stage"] == "pipeline"}
    assert len(pipelines) == 3 * 3  # baselines included on both axes
    assert (run / "results.csv").is_file() and (run / "curves.png").stat().st_size > 1000
    grids = [p for p in (run / "samples").rglob("*.png") if p.parent.name.startswith("pipeline__")]
    assert len(grids) == len(pipelines) * smoke.sample_images
    # LPIPS has no weights here: marked unavailable with the fix, every other number present.
    lpips = [r for r in rows if r["metric"] == "lpips"]
    assert lpips and all(r["value"] is None and "alexnet" in r["unavailable"] for r in lpips)
    assert all(r["value"] is not None for r in rows if r["metric"] in ("psnr", "ssim"))


def test_per_image_values_are_kept_and_picture_paths_work_everywhere(first_run):
    result, _ = first_run
    _, rows = read_run(result.run_dir)
    psnr = next(r for r in rows if r["stage"] == "sr" and r["sr"] == "bicubic" and r["metric"] == "psnr")
    per_image = psnr["per_image"]
    assert len(per_image) == psnr["n_images"] == 3 and all(isinstance(v, float) for v in per_image.values())
    assert sum(per_image.values()) / 3 == pytest.approx(psnr["value"])
    kid = next(r for r in rows if r["metric"] == "kid")
    assert kid["per_image"] is None  # a set metric has no per-image values
    pictures = list((result.run_dir / "samples").rglob("*"))
    assert any(p.suffix == ".png" for p in pictures)
    folder = result.run_dir / "samples" / "x2" / "samples-test"
    for stage in ("sr__bicubic", "colorizer__unet_vae", "pipeline__color-first__pix2pix__edsr"):
        assert (folder / stage / "out").is_dir() and list((folder / stage).glob("*.png")), stage  # every stage drawn
    assert {p.stem for p in (folder / "sr__bicubic").glob("*.png")} <= set(per_image)
    from PIL import Image

    out = Image.open(next((folder / "sr__bicubic" / "out").glob("*.png")))
    truth = Image.open(folder / "_truth_hr" / Path(out.filename).name)
    assert out.size == truth.size  # outputs at native size, not shrunk
    assert not [p for p in pictures if re.search(r'[<>:"|?*]', str(p.relative_to(result.run_dir)))]


def test_second_run_trains_nothing_and_equals_the_first(first_run, smoke, tmp_path):
    result, cache = first_run
    again = run_bench(smoke, registry=get_registry(), out=tmp_path / "again", cache_dir=cache, **quiet_local())
    assert again.trained == 0 and again.train_jobs == 4
    assert _values(again.run_dir) == _values(result.run_dir)
    # parameter counts come from the trained runs' records and equal a fresh count of the built model
    first, second = (json.loads((r.run_dir / "run.json").read_text()) for r in (result, again))
    assert second["params"] == first["params"]
    for label, info in second["models"].items():
        name, scale = label.split("@x")
        entry = get_registry().get(name)
        overrides = {**smoke.overrides.get(name, {}), **({"scale": int(scale)} if entry.task == "sr" else {})}
        preset = smoke.preset if smoke.preset in entry.presets else None
        assert info["parameters"] == second["params"][label] == entry.parameter_count(preset, **overrides) > 0
    # the loss curves are drawn once, then copied from the cache
    assert (again.run_dir / "curves.png").read_bytes() == (result.run_dir / "curves.png").read_bytes()
    assert len(list((cache / "curves").glob("*.png"))) == 1


def test_changing_one_config_retrains_only_that_model(first_run, smoke, tmp_path):
    _, cache = first_run
    name = smoke.sr[-1]
    changed = smoke.replace(overrides={**smoke.overrides, name: {**smoke.overrides.get(name, {}), "lr": 3e-4}})
    again = run_bench(changed, registry=get_registry(), out=tmp_path / "changed", cache_dir=cache, **quiet_local())
    assert again.trained == 1
    meta = json.loads((again.run_dir / "run.json").read_text())
    assert [k for k, v in meta["models"].items() if v["trained_now"]] == [f"{name}@x2"]


def test_interrupted_bench_resumes_to_the_same_leaderboard(first_run, smoke, tmp_path, monkeypatch):
    result, _ = first_run
    import zoo.store.checkpoint as ckpt

    cache = tmp_path / "cache"
    calls = {"n": 0}
    real_save = ckpt.write_checkpoint

    def dying_save(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # after the third checkpoint: some models done, one half-trained
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "write_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run_bench(smoke, registry=get_registry(), out=tmp_path / "cut", cache_dir=cache, **quiet_local())
    monkeypatch.setattr(ckpt, "write_checkpoint", real_save)
    resumed = run_bench(smoke, registry=get_registry(), out=tmp_path / "resumed", cache_dir=cache,
                        **quiet_local())
    assert 0 < resumed.trained < 4
    assert _values(resumed.run_dir) == _values(result.run_dir)


def test_dry_run_plans_what_the_real_run_then_does_and_writes_nothing(dry_before, first_run, smoke, tmp_path):
    from zoo.harness import dryrun

    report, lines, cache, out = dry_before  # made on the empty cache before the first run, writing nothing
    trainings = {f"{t.job.model}@x{t.job.scale}": t for t in report.trainings}
    assert set(trainings) == {"unet_vae@x2", "pix2pix@x2", "edsr@x2", "srgan@x2"}
    assert {t.status for t in trainings.values()} == {"to train"}
    for t in trainings.values():
        assert t.error is None and t.peak_bytes is not None and t.seconds > 0
        assert [s.name for s in t.stages] == [s.name for s in get_registry().get(t.job.model).recipe.stages]
        assert sum(s.steps for s in t.stages) == t.job.steps and all(s.timed >= 1 for s in t.stages)
    assert report.seconds == pytest.approx(sum(t.seconds for t in trainings.values()))
    assert len(report.evaluations) == 15 and not any(cached for _, cached in report.evaluations)
    text = "\n".join(lines)
    assert "plan: 4 training jobs (0 cached, 0 to resume, 4 to train), 15 evaluations (0 cached, 15 to run)" in text
    assert "srresnet:" in text and "pipeline color-first  pix2pix + srgan" in text
    assert "estimated training time on cpu" in text

    meta = json.loads((out / "run.json").read_text())  # the first run, made after the dry run
    assert {k for k, v in meta["models"].items() if v["trained_now"]} == set(trainings)
    assert {k: v["key"] for k, v in meta["models"].items()} == {k: t.job.key for k, t in trainings.items()}
    assert meta["train_jobs"] == len(trainings)
    for job, _ in report.evaluations:  # every evaluation the dry run named is one the run computed
        assert (cache / "eval" / f"{job.key}.json").is_file(), job

    before = sorted(str(p) for p in cache.rglob("*"))
    again = dryrun.dry_run(smoke, registry=get_registry(), out=tmp_path / "run", cache_dir=cache,
                           log=lambda *_: None)
    assert {t.status for t in again.trainings} == {"cached"} and all(c for _, c in again.evaluations)
    assert again.seconds == 0 and not any(t.stages for t in again.trainings)
    assert sorted(str(p) for p in cache.rglob("*")) == before and not (tmp_path / "run").exists()


def test_readme_main_job_is_zoo_bench_on_default():
    makefile = (REPO / "Makefile").read_text()
    bench_recipe = makefile.split("\nbench:")[1].split("\n\n")[0]
    assert "zoo bench" in bench_recipe and "--suite" not in bench_recipe.replace("--suite default", "")
    assert (REPO / "README.md").read_text().splitlines()[3].startswith("make bench")


def test_ray_bench_ignores_a_dead_cluster_and_gives_identical_results(first_run, dead_ray_cluster, tmp_path):
    """Ray's record names a cluster that died: the bench runs on a private Ray instance regardless, shows zoo's
    progress and none of Ray's log lines, and every number equals the in-process executor's."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'zoo[ray]')")
    ray_tmp, port = dead_ray_cluster
    out = tmp_path / "ray"
    proc = run_zoo("bench", "--suite", "smoke", "--executor", "ray", "--device", "cpu", "--out", str(out),
                   "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no Ray warnings, no connection retries
    assert "ray: a private Ray instance" in proc.stdout and f"Ray's logs: {ray_tmp}" in proc.stdout
    assert "[19/19 done, 0 running, 0 failed]" in proc.stdout
    assert (Path(ray_tmp) / "ray" / "ray_current_cluster").read_text() == f"127.0.0.1:{port}"
    meta = json.loads((out / "run.json").read_text())
    assert meta["executor"] == "ray" and meta["trained_now"] == 4
    result, _ = first_run
    # Ray runs every task with one intra-op thread. Float reductions split over more threads round
    # differently, so "identical" is against a local run with one thread per job too: `zoo bench --threads 1`
    # (what xdist workers have anyway).
    if torch.get_num_threads() != 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            result = run_bench(load_suite("smoke"), registry=get_registry(), out=tmp_path / "local1",
                               cache_dir=tmp_path / "c1", **quiet_local())
        finally:
            torch.set_num_threads(threads)
    local, remote = _values(result.run_dir), _values(out)
    assert local.keys() == remote.keys()
    # every metric value, exactly
    assert local == remote, {k: (local[k], remote[k]) for k in local if local[k] != remote[k]}
