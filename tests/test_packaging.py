"""A built wheel runs the main job from any directory; built-in suites are package data; $ZOO_DATA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from zoo.errors import ZooError

from helpers import REPO, run_zoo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _isolated_env(target: Path) -> dict[str, str]:
    """The environment of a process that sees the wheel's files and the third-party packages, nothing else.

    The venv may hold an editable install of zoo: a .pth file in site-packages installs a finder that maps
    ``zoo`` to some checkout. ``python -S`` skips site-packages' .pth files, so that finder never exists;
    the site-packages folders are then put on PYTHONPATH after the target, for torch and friends.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    site = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    env["PYTHONPATH"] = os.pathsep.join([str(target), *site])
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(target, wheel)``: a wheel built from a copy of the sources, installed into a throwaway target."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "*.pyc")
    for name in ("zoo", "plugins"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # a copy, so that the build's egg-info and build/ folders never land in the checkout
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(root / "dist")],
                   check=True, capture_output=True, cwd=root, timeout=300)
    wheel = next((root / "dist").glob("zoo-*.whl"))
    target = root / "target"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, cwd=root, timeout=300)
    return target, wheel


def _run(args: list[str], target: Path, cwd: Path, env: dict | None = None):
    return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True, cwd=cwd,
                          env={**_isolated_env(target), **(env or {})}, timeout=600)


@pytest.mark.slow
def test_the_wheel_runs_the_smoke_bench_from_an_unrelated_directory(installed, tmp_path):
    target, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"zoo/harness/suites/{n}.toml" for n in ("smoke", "default", "paper", "sr-classic")} <= set(names)
    assert {"zoo/boards/report_assets/report.js", "zoo/boards/report_assets/report.css"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "benchmark/"))]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the process imports zoo and the built-in plugins from the target, and no finder of an editable install
    probe = _run(["-c", "import sys, zoo, zoo_sr, zoo_colorizers, zoo.harness.suite as s; print(zoo.__file__); "
                  "print(zoo_sr.__file__); print(zoo_colorizers.__file__); print(s.builtin_suites()['smoke']); "
                  "print([type(f).__name__ for f in sys.meta_path])"], target, elsewhere)
    assert probe.returncode == 0, probe.stderr
    *files, finders = probe.stdout.splitlines()
    assert all(Path(f).resolve().is_relative_to(target.resolve()) for f in files), files
    assert "Editable" not in finders and "editable" not in finders.lower()

    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = _run(["-m", "zoo", "bench", "--suite", "smoke", "--out", str(out), "--cache", str(cache)], target,
                elsewhere)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert Path(meta["suite"]["source"]).resolve().is_relative_to(target.resolve())
    assert meta["trained_now"] == 4 and (out / "leaderboard.md").is_file()
    assert not list(elsewhere.iterdir())  # nothing written to the working directory

    listing = _run(["-m", "zoo", "suites", "--json"], target, elsewhere, env={"ZOO_DATA": ""})
    suites = {s["name"]: s for s in json.loads(listing.stdout)["suites"]}
    assert set(suites) == {"color-classic", "default", "paper", "smoke", "sr-classic"} and suites["smoke"]["ready"]
    assert not suites["sr-classic"]["ready"]
    # installed, sr-classic's data needs $ZOO_DATA: said in one line, before anything runs
    proc = _run(["-m", "zoo", "bench", "--suite", "sr-classic", "--out", str(tmp_path / "sr")], target, elsewhere,
                env={"ZOO_DATA": ""})
    assert proc.returncode == 2
    assert proc.stderr.startswith("zoo: error: suite 'sr-classic' reads its data under $ZOO_DATA (train, Set5")
    assert "ZOO_DATA is not set" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sr").exists()


def test_builtin_suites_name_their_data_as_samples_or_under_zoo_data():
    from zoo.harness.suite import PLACEHOLDER, builtin_suites

    suites = builtin_suites()
    assert set(suites) == {"color-classic", "default", "paper", "smoke", "sr-classic"}
    for name, file in suites.items():
        raw = tomllib.loads(file.read_text())
        specs = [raw.get("train", "samples:train"), *raw.get("test", []), *raw.get("optional_test", [])]
        assert all(s.startswith(("samples", PLACEHOLDER + "/")) for s in specs), (name, specs)


def test_zoo_data_root_and_the_message_without_one(monkeypatch, tmp_path):
    import zoo.harness.suite as sf
    from zoo.harness.suite import load_suite

    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    suite = load_suite("sr-classic")
    assert suite.train == str(tmp_path / "train") and suite.optional_test == [str(tmp_path / "Urban100")]
    monkeypatch.delenv("ZOO_DATA")
    assert sf.data_root()[0] == (REPO.parent / "shared" / "data").resolve()  # from a checkout: beside it
    monkeypatch.setattr(sf, "checkout_root", lambda: None)  # as installed
    suite = load_suite("sr-classic")
    assert suite.train == "${ZOO_DATA}/train"
    with pytest.raises(ZooError, match=r"reads its data under \$ZOO_DATA \(train, Set5, Set14, BSD100\), but "
                                        r"ZOO_DATA is not set"):
        sf.check_data_root(suite)
    sf.check_data_root(suite.replace(train="samples:train", test=["samples:test"]))  # --data / --test suffice


def test_user_suites_by_path_resolve_relative_data_beside_the_file(tmp_path):
    from zoo.harness.suite import load_suite

    (tmp_path / "imgs").mkdir()
    path = tmp_path / "mine.toml"
    path.write_text('train = "imgs"\ntest = ["imgs"]\n')
    suite = load_suite(str(path))
    assert suite.name == "mine" and suite.train == str(tmp_path / "imgs")
    with pytest.raises(ZooError, match="unknown suite 'nosuch'.*smoke"):
        load_suite("nosuch")


def test_zoo_suites_lists_name_description_data_and_presence(tmp_path):
    proc = run_zoo("suites", env={"ZOO_DATA": str(tmp_path)}, check=True)
    assert "smoke" in proc.stdout and "Smoke test" in proc.stdout
    assert f"train: {tmp_path}/train (MISSING)" in proc.stdout and f"$ZOO_DATA: {tmp_path} (ZOO_DATA)" in proc.stdout
    rows = {r["name"]: r for r in json.loads(run_zoo("suites", "--json", env={"ZOO_DATA": str(tmp_path)},
                                                     check=True).stdout)["suites"]}
    assert rows["default"]["ready"] and not rows["sr-classic"]["ready"]
    assert rows["default"]["data"][0] == {"role": "train", "spec": "samples:train", "present": True, "required": True}
