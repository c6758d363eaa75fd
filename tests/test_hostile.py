"""Hostile and careless use: each case runs the real command line and asserts its exit code, a one-line
message without a traceback, and that no user file or cached result was changed (issue 20's standing test).

Most cases call ``zoo.cli.main`` in this process (``helpers.zoo_cli``: the code a user runs, without paying
a fresh torch import per case); a full disk is a file-size limit (RLIMIT_FSIZE), a second process on the
same cache a lock held by the test. Plugins that exit need real entry points: those cases run ``python -m
zoo``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_dist, ok, refused, run_zoo, snapshot, strict_json
from helpers import zoo_cli as zoo


def photo(path: Path, size=(96, 72), seed: int = 0) -> Path:
    from zoo.data.datasets import resolve_dataset

    base = np.asarray(Image.open(resolve_dataset("samples:test")[0].path).convert("RGB").resize(size))
    noise = np.random.default_rng(seed).integers(0, 8, base.shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(base // 2 + noise).save(path)
    return path


def flat(path: Path, size=(48, 48), colour=(90, 140, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


RUN = ("run", "--colorizer", "gray", "--sr", "bicubic", "--tile", "64")


# -- 3. zoo run never loses a file --------------------------------------------------------------------------


def test_run_into_the_input_folder_with_overwrite_never_replaces_an_input(tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    photo(photos / "b.jpg", seed=1)
    before = snapshot(photos)
    res = ok(zoo(*RUN, photos, "-o", photos, "--overwrite"))
    assert "a.png is an input file" in res.out
    after = snapshot(photos)
    assert {k: v for k, v in after.items() if k in before} == before  # originals untouched
    assert Image.open(photos / "b.png").size == (192, 144)  # b.jpg's output, a new file
    ok(zoo(*RUN, photos, "-o", photos, "--overwrite"))  # now b.png is an input too: kept as well
    assert {k: v for k, v in snapshot(photos).items() if k in after} == after


def test_inputs_sharing_a_name_are_all_written_and_said(tmp_path):
    photo(tmp_path / "a" / "x.png")
    photo(tmp_path / "b" / "x.png", seed=1)
    photo(tmp_path / "c" / "pic.png", seed=2)
    photo(tmp_path / "c" / "pic.jpg", seed=3)
    out = tmp_path / "out"
    res = ok(zoo(*RUN, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", out))
    assert "2 written" in res.out and {p.relative_to(out).as_posix() for p in out.rglob("*.png")} == {"a/x.png",
                                                                                                      "b/x.png"}
    assert "folder structure" in res.out
    res = ok(zoo(*RUN, tmp_path / "c", "-o", tmp_path / "out2"))
    assert "2 written" in res.out and "would share an output name" in res.out
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["pic.jpg.png", "pic.png.png"]
    a, b = (np.asarray(Image.open(tmp_path / "out2" / n)) for n in ("pic.jpg.png", "pic.png.png"))
    assert not np.array_equal(a, b)


def test_preview_is_not_replaced_without_overwrite(tmp_path):
    src = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_preview.png").write_bytes(b"mine")
    res = ok(zoo(*RUN, src, "-o", out, "--preview"))
    assert (out / "a_preview.png").read_bytes() == b"mine" and "a_preview.png exists, kept" in res.out
    assert (out / "a.png").is_file()


def test_dangling_symlink_among_the_inputs_is_named(tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    (photos / "gone.png").symlink_to(tmp_path / "nowhere.png")
    res = ok(zoo(*RUN, photos, "-o", tmp_path / "out"))
    assert "gone.png: dangling symlink" in res.err and "1 written" in res.out


def test_run_into_an_unwritable_place_is_one_line(tmp_path):
    src = photo(tmp_path / "a.png")
    (tmp_path / "file").write_text("not a folder")
    refused(zoo(*RUN, src, "-o", tmp_path / "file" / "out"), "cannot write")
    if os.geteuid() != 0:  # root writes anywhere: the read-only case needs a normal user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            refused(zoo(*RUN, src, "-o", ro), "cannot write")
        finally:
            ro.chmod(0o755)


@contextlib.contextmanager
def full_disk(size: int):
    """The kernel refuses writes past ``size`` bytes (EFBIG; Python ignores SIGXFSZ): a disk full for us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_full_disk_leaves_no_truncated_output(tmp_path):
    src = photo(tmp_path / "a.png", size=(300, 220))
    out = tmp_path / "out"
    out.mkdir()
    with full_disk(100_000):
        res = zoo(*RUN, src, "-o", out)
    refused(res, "cannot write", "File too large")
    assert list(out.iterdir()) == []  # neither a cut a.png nor its temporary file


# -- 4. small and flat images -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale,side", [(2, 12), (8, 20)])
def test_too_small_images_are_skipped_with_a_warning_in_eval(tmp_path, scale, side):
    data = tmp_path / "test"
    photo(data / "big.png", size=(96, 96))
    photo(data / "tiny.png", size=(side, side))
    res = ok(zoo("eval", "--sr", "bicubic", "--data", data, "--scale", scale, "--json"))
    report = strict_json(res.out)
    assert report["n_images"] == 1 and "tiny" in report["skipped"][0] and "too small" in res.err
    only_tiny = tmp_path / "only"
    photo(only_tiny / "tiny.png", size=(side, side))
    refused(zoo("eval", "--sr", "bicubic", "--data", only_tiny, "--scale", scale), "no usable image")


def test_flat_image_gives_capped_psnr_and_strict_json(tmp_path):
    data = tmp_path / "flat"
    flat(data / "f.png")
    photo(data / "p.png", size=(64, 64))
    report = strict_json(ok(zoo("eval", "--sr", "bicubic", "--data", data, "--json",
                                "--metrics", "psnr,ssim")).out)
    psnr = next(m for m in report["metrics"] if m["metric"] == "psnr")
    assert 0 < psnr["value"] < 100 and "count as 100 dB" in psnr["note"]
    table = ok(zoo("eval", "--sr", "bicubic", "--data", data)).out
    assert not re.search(r"\binf\b", table) and "count as 100 dB" in table


def test_bench_with_small_and_flat_test_images_writes_its_leaderboard(tmp_path):
    test = tmp_path / "test"
    photo(test / "ok.png", size=(64, 64))
    photo(test / "small.png", size=(12, 12))
    flat(test / "flat.png")
    out = tmp_path / "run"
    res = ok(zoo("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "bicubic", "--test", test,
                 "--out", out, "--cache", tmp_path / "cache", "--threads", "1"))
    assert "small" in res.err and (out / "leaderboard.md").is_file()
    assert strict_json((out / "run.json").read_text())["host"]["threads"] == 1
    assert "count as 100 dB" in (out / "leaderboard.md").read_text()  # the capped PSNR has its footnote
    rows = [strict_json(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r.get("failed") is None for r in rows)
    assert all(r["value"] is None or np.isfinite(r["value"]) for r in rows)


# -- 6. wrong configuration ---------------------------------------------------------------------------------

SUITE_ERRORS = {
    'steps = "six"': "'steps' must be an integer",
    'scales = ["x"]': "'scales' must be a list of integers",
    "scales = 2": "'scales' must be a list of integers",
    'seed = "abc"': "'seed' must be an integer",
    "train = 42": "'train' must be a string",
    'steps_per_model = "x"': "'steps_per_model' must be a table of integers",
    "checkpoint_every = 0": "'checkpoint_every' must be at least 1",
    'metrics = "psnr"': "'metrics' must be a list of strings",
    'test = "samples:test"': "'test' must be a list of strings",
    "[overrides.nosuchmodel]\nn_feats = 8": "[overrides.nosuchmodel]: unknown model 'nosuchmodel'",
    "[overrides.edsr]\nfeatures = 0": "[overrides.edsr]: model 'edsr': 'features' must be at least 1",
    'name = "../../escaped"': "'name' must be a plain folder name",
}


@pytest.mark.parametrize("line", list(SUITE_ERRORS))
def test_a_wrong_suite_is_one_line_before_anything_runs(tmp_path, monkeypatch, line):
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "s.toml"
    suite.write_text('colorizers = ["gray"]\nsr = ["bicubic", "edsr"]\n' + line + "\n")
    refused(zoo("bench", "--suite", suite, "--cache", tmp_path / "cache"), SUITE_ERRORS[line])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]  # no run folder, no cache, nothing escaped


def test_threads_with_ray_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(zoo("bench", "--suite", "smoke", "--executor", "ray", "--threads", "2"), "one thread per task")
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset_is_an_error_with_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(zoo("bench", "--suite", "smoke", "--preset", "tinny", "--cache", tmp_path / "cache"),
            "unknown preset 'tinny'", "did you mean 'tiny'")
    refused(zoo("train", "--model", "edsr", "--preset", "tinny"), "no preset 'tinny'", "did you mean 'tiny'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting,message", [("features=0", "'features' must be at least 1"),
                                             ("lr=nan", "'lr' must be a finite number"),
                                             ("blocks=-2", "'blocks' must be at least 0")])
def test_nonsense_settings_are_refused(tmp_path, setting, message):
    refused(zoo("train", "--model", "edsr", "--preset", "tiny", "--set", setting, "--out", tmp_path / "run"),
            message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["mps", "meta", "cuda:7", "xpu"])
def test_a_device_this_machine_lacks_is_one_line(device):
    refused(zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--device", device), device)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from zoo.plugins.registry import get_registry
    from zoo.store.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    entry = get_registry().get("edsr")
    config = entry.make_config("tiny", {"scale": 2})
    from zoo.plugins.config import config_to_dict

    return save_checkpoint(folder / "m.safetensors", entry.build(config),
                           {"model": "edsr", "config": config_to_dict(config)})


@pytest.mark.parametrize("change,message", [
    (lambda m: m.pop("model"), "'model' must name a registered model"),
    (lambda m: m.update(config="features=16"), "'config' must be a table"),
    (lambda m: m.update(model=["edsr"]), "'model' must name a registered model"),
    (lambda m: m["config"].update(features=10**6), "does not fit model config"),
    (lambda m: m["config"].update(blocks=64), "missing"),
])
def test_a_malformed_checkpoint_sidecar_is_refused_before_allocating(checkpoint, tmp_path, change, message):
    import shutil

    path = tmp_path / "m.safetensors"
    shutil.copy(checkpoint, path)
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    change(meta)
    path.with_suffix(".json").write_text(json.dumps(meta))
    before = snapshot(tmp_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(zoo("eval", "--sr", path, "--data", "samples:test"), message)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 500_000  # KiB: nothing big was built
    assert snapshot(tmp_path) == before


# -- 7. plugins that exit ------------------------------------------------------------------------------------

EXITING_PLUGINS = {
    "exit-at-import": "import sys\nsys.exit()\n",
    "exit-in-hook": "import sys\nimport zoo\n\n@zoo.hookimpl\ndef register_sr_models(register):\n    sys.exit(3)\n",
    "systemexit-in-hook": "import zoo\n\n@zoo.hookimpl\ndef register_colorizers(register):\n    raise SystemExit\n",
}


def test_plugins_that_call_sys_exit_cost_only_themselves(tmp_path):
    for dist, source in EXITING_PLUGINS.items():
        make_dist(tmp_path / "site", dist, dist.replace("-", "_"), source)
    # ZOO_PLUGINS names the built-ins (distribution zoo), the exiting plugins and a typo
    proc = run_zoo("list", pythonpath=[tmp_path / "site"],
                   env={"ZOO_PLUGINS": ",".join(["zoo", *EXITING_PLUGINS, "nosuchdist"])})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    for name in [*EXITING_PLUGINS, "nosuchdist"]:
        lines = [ln for ln in proc.stderr.splitlines() if f"'{name}'" in ln]
        assert len(lines) == 1 and lines[0].startswith("zoo: warning:"), proc.stderr
    assert "edsr" in proc.stdout and "pix2pix" in proc.stdout


def test_a_plugin_raising_keyboardinterrupt_costs_only_itself(tmp_path):
    make_dist(tmp_path / "site", "ctrl-c", "ctrl_c", "raise KeyboardInterrupt\n")
    proc = run_zoo("plugins", pythonpath=[tmp_path / "site"])
    assert proc.returncode == 0 and "zoo_sr" in proc.stdout, proc.stderr


# -- 8. shared files, foreign folders, damaged runs ---------------------------------------------------------


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o002)  # a team's umask: group-writable
    try:
        ok(zoo(*RUN, photo(tmp_path / "a.png"), "-o", tmp_path / "out", "--preview"))
        from zoo.store.files import atomic_write_json

        atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    for p in (tmp_path / "out" / "a.png", tmp_path / "out" / "a_preview.png", tmp_path / "x.json"):
        assert p.stat().st_mode & 0o777 == 0o664, p


def test_a_training_run_locked_by_another_process_is_waited_for(tmp_path):
    import threading

    from zoo.store.files import locked

    out = tmp_path / "run"
    err, result = io.StringIO(), {}
    train = ("train", "--model", "edsr", "--preset", "tiny", "--steps", "4", "--checkpoint-every", "2",
             "--out", out, "--set", "batch_size=2", "--set", "patch_size=16")
    with locked(out / ".lock"):  # as a second bench finds it while the first one trains this run
        worker = threading.Thread(target=lambda: result.update(res=zoo(*train, err=err)))
        worker.start()
        deadline = time.time() + 120
        while "waiting" not in err.getvalue() and time.time() < deadline and worker.is_alive():
            time.sleep(0.1)
        assert "another process is training this run" in err.getvalue(), err.getvalue()
        time.sleep(0.5)
        assert not (out / "model.json").exists() and not (out / "log.jsonl").exists()  # it waits
    worker.join(timeout=240)
    ok(result["res"])
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_bench_out_holding_another_run_is_refused_unless_forced(tmp_path):
    test = tmp_path / "test"
    photo(test / "a.png", size=(64, 64))
    bench = ("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "bicubic", "--test", test,
             "--cache", tmp_path / "cache", "--out")
    first = tmp_path / "first"
    ok(zoo(*bench, first))
    ok(zoo(*bench, first))  # the same command again may rewrite its own folder
    (first / "samples" / "mine.png").write_bytes(b"keep me")
    before = snapshot(first)
    narrower = ("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "bicubic", "--test", test,
                "--cache", tmp_path / "cache", "--order", "sr-first", "--out", first)
    refused(zoo(*narrower), "is not empty", "--force")
    assert snapshot(first) == before
    ok(zoo(*narrower, "--force"))
    assert not (first / "samples" / "mine.png").exists()  # no stale picture survives a replaced run
    foreign = tmp_path / "mine"
    (foreign / "holiday.jpg").parent.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"photo")
    refused(zoo(*bench, foreign), "is not empty", "holiday.jpg")
    assert (foreign / "holiday.jpg").read_bytes() == b"photo"


def test_train_out_holding_another_model_is_refused_unless_forced(tmp_path):
    out = tmp_path / "run"
    train = ("train", "--preset", "tiny", "--steps", "2", "--checkpoint-every", "2", "--set", "batch_size=2",
             "--out", out)
    ok(zoo(*train, "--model", "edsr"))
    before = snapshot(out)
    refused(zoo(*train, "--model", "srgan"), "holds the run of model 'edsr'", "--force")
    assert snapshot(out) == before
    ok(zoo(*train, "--model", "srgan", "--force"))
    assert json.loads((out / "model.json").read_text())["model"] == "srgan"


def test_unwritable_bench_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    refused(zoo("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "bicubic", "--out",
                tmp_path / "file" / "run", "--cache", tmp_path / "cache"), "file")


def test_bench_on_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    test = tmp_path / "test"
    photo(test / "a.png", size=(64, 64))
    with full_disk(3000):  # smaller than the results files
        res = zoo("bench", "--suite", "smoke", "--colorizer", "gray", "--sr", "bicubic", "--test", test,
                  "--out", tmp_path / "run", "--cache", tmp_path / "cache")
    refused(res, "cannot write", "File too large")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    assert not (tmp_path / "run" / "run.json").exists()  # written last: the folder is no half run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from zoo.harness.bench import write_run

    run = tmp_path_factory.mktemp("finished")
    row = {"stage": "sr", "order": "", "test_set": "t", "scale": 2, "colorizer": None, "sr": "bicubic",
           "n_images": 1, "images_per_second": 1.0, "skipped": [], "metric": "psnr", "value": 30.0, "std": 0.0,
           "n": 1, "higher_is_better": True, "ranked": True, "unit": "dB", "convention": "Y", "unavailable": None,
           "weights": {}}
    write_run(run, [row, {**row, "metric": "ssim", "value": 0.9, "unit": ""}],
              {"suite": {"name": "t", "scales": [2]}, "models": {}, "params": {}})
    return run


@pytest.mark.parametrize("damage,message", [
    (lambda run: (run / "results.jsonl").write_text((run / "results.jsonl").read_text()[:-40]),
     "results.jsonl line 2 is not valid JSON"),
    (lambda run: (run / "run.json").write_text('{"suite": {"name": '), "run.json is not valid JSON"),
    (lambda run: (run / "run.json").write_text("[1, 2]"), "run.json holds list"),
])
def test_a_damaged_run_folder_is_one_line(finished_run, tmp_path, damage, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run)
    before = snapshot(run)
    refused(zoo("leaderboard", run), message)
    if "run.json" in message:
        refused(zoo(*RUN, photo(tmp_path / "a.png"), "-o", tmp_path / "out", "--run", run), message)
    assert snapshot(run) == before


def test_leaderboard_output_on_a_full_disk_leaves_nothing(finished_run, tmp_path):
    with full_disk(100):
        res = zoo("leaderboard", finished_run, "-o", tmp_path / "board.md")
    refused(res, "cannot write", "File too large")
    assert list(tmp_path.iterdir()) == []
