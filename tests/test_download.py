"""Weight downloads against a loopback HTTP server, never the internet: verified, atomic, offline, mirrored.

The server (``http.server`` in a thread on 127.0.0.1) serves the random-init test weight files
(weights_fixture.py) under their standard names; zoo is pointed at it with ZOO_WEIGHTS_MIRROR, and the test-only
the tests put the files' own sha256 where the published ones would be (:func:`_publish` in this process, a
``sitecustomize`` on a child's path: nothing the product reads). Everything else is the code path users run:
the real HTTP client, the real hash check, the real rename.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ is not a package
from zoo.store import download as D  # noqa: E402
from zoo.store import weights as W  # noqa: E402

from helpers import REPO, quiet_local, run_zoo, shared_set  # noqa: E402
from weights_fixture import FILENAMES  # noqa: E402  (its fixtures come from conftest.py)

ALEX, INCEPTION = FILENAMES["alexnet"], FILENAMES["fid_inception"]


class Mirror:
    """Files of ``root`` over HTTP on 127.0.0.1. ``modes[name]``: ``cut`` (send half the body, close; once),
    ``tamper`` (one byte flipped), ``stall`` (send half, then wait for ``release``), ``pair`` (answer once two
    requests have arrived, then send slowly, so that two downloads overlap)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.modes: dict[str, str] = {}
        self.requests: list[str] = []
        self.stalled, self.release = threading.Event(), threading.Event()
        self.pair = threading.Barrier(2, timeout=120)
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror._serve(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/weights"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _serve(self, h) -> None:
        name = urllib.parse.unquote(h.path.rsplit("/", 1)[-1])
        self.requests.append(name)
        path = self.root / name
        if not path.is_file():
            h.send_error(404)
            return
        mode = self.modes.get(name)
        if mode == "cut":
            del self.modes[name]  # the next request gets the whole file
        if mode == "pair":
            self.pair.wait()
        size = path.stat().st_size
        h.send_response(200)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        limit = size // 2 if mode in ("cut", "stall") else size
        with open(path, "rb") as f:
            sent = 0
            while sent < limit:
                chunk = f.read(min(1 << 20, limit - sent))
                if mode == "tamper" and sent == 0:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                h.wfile.write(chunk)
                sent += len(chunk)
                if mode == "pair":
                    time.sleep(0.01)
        if mode == "stall":
            self.stalled.set()
            self.release.wait(120)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _sha(path: Path) -> str:
    return W.file_sha256(path)


def _expected(source_dir: Path, *names: str) -> dict[str, str]:
    """The served files ``names`` with their own sha256, to stand where the published ones would be."""
    return {n: _sha(source_dir / n) for n in names}


def _publish(monkeypatch, table: dict[str, str]) -> None:
    """In this process: ``table`` (file name -> sha256) replaces the published hashes of those files."""
    published = W.WeightFile.expected_sha256.fget
    monkeypatch.setattr(W.WeightFile, "expected_sha256", property(lambda w: table.get(w.filename) or published(w)))


_SHIM = """import zoo.store.weights as W
_table = {table!r}
_published = W.WeightFile.expected_sha256.fget
W.WeightFile.expected_sha256 = property(lambda w: _table.get(w.filename) or _published(w))
"""


def _published_for_children(table: dict[str, str]) -> str:
    """A folder holding a ``sitecustomize`` that does what :func:`_publish` does, for a child's PYTHONPATH."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-published-"))
    (folder / "sitecustomize.py").write_text(_SHIM.format(table=table))
    return str(folder)


def _dead_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Belt and braces: this module's in-process code may connect to 127.0.0.1 only."""
    real = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to reach {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def served(test_weights_dir) -> Path:
    return test_weights_dir / "hub" / "checkpoints"


@pytest.fixture
def mirror(served):
    m = Mirror(served)
    yield m
    m.close()


@pytest.fixture
def online(tmp_path, monkeypatch, mirror, served):
    """An empty TORCH_HOME, downloads on, from the loopback mirror; returns the (empty) checkpoint folder."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", mirror.url)
    _publish(monkeypatch, _expected(served, ALEX, INCEPTION))
    # per-process memories of failed hosts and files start empty in every test
    monkeypatch.setattr(D, "_UNREACHABLE", {})
    monkeypatch.setattr(W, "_FAILED", {})
    return tmp_path / "torch" / "hub" / "checkpoints"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _zoo_env(published: dict[str, str] | None = None, **extra) -> dict[str, str]:
    """The environment of a ``python -m zoo`` child with downloads on (conftest turns them off); ``published``
    replaces published hashes in the child."""
    env = {**os.environ, "ZOO_OFFLINE": "", "HF_HUB_OFFLINE": ""}
    first = [_published_for_children(published)] if published else []
    env["PYTHONPATH"] = os.pathsep.join([*first, str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------ first use
def test_first_use_downloads_verifies_and_lpips_fid_kid_compute(online, mirror, served):
    from zoo.data.datasets import resolve_dataset
    from zoo.harness.evaluate import evaluate, load_model

    cpu = torch.device("cpu")
    assert _files(online) == []
    report = evaluate(dataset=resolve_dataset("samples:test"), scale=4, device=cpu,
                      sr=load_model("bicubic", "sr", scale=4, device=cpu), metrics=["psnr", "lpips", "fid", "kid"])
    by = {r.info.name: r for r in report.results}
    assert all(r.available for r in by.values()), {k: r.unavailable for k, r in by.items()}
    assert by["lpips"].value > 0 and by["fid"].value > 0
    # under the standard names, byte for byte what was served, no temporary file left
    assert _files(online) == sorted([ALEX, INCEPTION])
    for name in (ALEX, INCEPTION):
        assert _sha(online / name) == _sha(served / name)
    assert by["lpips"].weights[ALEX] == _sha(served / ALEX)[:10]
    assert by["fid"].weights[INCEPTION] == _sha(served / INCEPTION)[:10]
    assert sorted(mirror.requests) == sorted([ALEX, INCEPTION])  # kid used fid's file, no second fetch
    assert [(d["filename"], d["source"]) for d in report.downloaded] == [(ALEX, "mirror"), (INCEPTION, "mirror")]
    assert report.downloaded[0]["sha256"] == _sha(served / ALEX)


def test_a_loss_downloads_its_vgg19_on_first_use(online, mirror, served, monkeypatch):
    from zoo.training.losses import VGGFeatureLoss

    vgg19 = FILENAMES["vgg19"]
    _publish(monkeypatch, _expected(served, vgg19))
    loss = VGGFeatureLoss.from_hub("relu2_2")
    assert loss is not None and mirror.requests == [vgg19]
    assert _files(online) == [vgg19] and _sha(online / vgg19) == _sha(served / vgg19)
    x = torch.rand(1, 3, 16, 16)
    assert loss(x, x).item() == 0 and loss(torch.rand(1, 3, 16, 16), x).item() > 0


def test_mirror_directory_and_full_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    torch.save({"w": torch.arange(6.0)}, shelf / "tiny-00000000.pth")
    digest = hashlib.sha256((shelf / "tiny-00000000.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", str(shelf))

    def tiny(sha256=None, prefix=None):
        return W.WeightFile("tiny", "tiny-00000000.pth", "https://example.invalid/tiny-00000000.pth", "test",
                            sha256_prefix=prefix, sha256=sha256)

    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    # the full digest is checked, not only its start: one wrong last digit is refused
    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    with pytest.raises(D.DownloadError, match=r"was refused: its sha256 .* does not match the published"):
        D.fetch(tiny(sha256=wrong, prefix=digest[:8]))
    assert _files(ckpt) == []
    with pytest.raises(D.DownloadError, match="no published sha256"):
        D.fetch(tiny())
    with pytest.raises(D.DownloadError, match=r"the mirror \(\$ZOO_WEIGHTS_MIRROR\) has no tiny-00000001.pth"):
        D.fetch(W.WeightFile("tiny1", "tiny-00000001.pth", "https://example.invalid/x", "test", "00000001"))
    path = D.fetch(tiny(sha256=digest))
    assert path == ckpt / "tiny-00000000.pth" and _files(ckpt) == ["tiny-00000000.pth"]
    assert torch.equal(W.load_state_dict(tiny(sha256=digest))["w"], torch.arange(6.0))
    assert str(shelf) not in W.WeightFile("x", "x-00000000.pth", "https://example.invalid/x", "t").missing_message()


# --------------------------------------------------------------------------------------- bad downloads
def test_tampered_download_is_refused_and_nothing_is_left(online, mirror):
    from zoo.metrics import MetricUnavailable
    from zoo.metrics.build import build_metric

    mirror.modes[ALEX] = "tamper"
    with pytest.raises(D.DownloadError, match=r"was refused: its sha256 \w+\.\.\. does not match the published"):
        D.fetch(W.ALEXNET)
    assert _files(online) == []
    with pytest.raises(MetricUnavailable) as err:
        build_metric("lpips", device="cpu")
    msg = str(err.value)
    assert msg.startswith(f"alexnet weights missing: {ALEX} is not in $TORCH_HOME/hub/checkpoints; the download "
                          f"from the mirror ($ZOO_WEIGHTS_MIRROR) was refused") and "\n" not in msg, msg
    assert _files(online) == [] and mirror.requests == [ALEX, ALEX]
    with pytest.raises(MetricUnavailable):  # the same process does not fetch the same bad file again
        build_metric("lpips", device="cpu")
    assert mirror.requests == [ALEX, ALEX]


def test_cut_download_leaves_nothing_and_a_retry_succeeds(online, mirror, served):
    mirror.modes[INCEPTION] = "cut"
    size = (served / INCEPTION).stat().st_size
    with pytest.raises(D.DownloadError, match=rf"broke off after {size // 2} of {size} bytes; nothing was kept"):
        D.fetch(W.FID_INCEPTION)
    assert _files(online) == []
    assert D.fetch(W.FID_INCEPTION) == online / INCEPTION
    assert _files(online) == [INCEPTION] and _sha(online / INCEPTION) == _sha(served / INCEPTION)


def test_interrupted_download_leaves_nothing(online, mirror, served):
    mirror.modes[ALEX] = "stall"
    env = _zoo_env(TORCH_HOME=str(online.parent.parent), ZOO_WEIGHTS_MIRROR=mirror.url,
                   published=_expected(served, ALEX))
    # A shell's background job (nohup ... &) ignores SIGINT and its children inherit that, so Python would
    # install no KeyboardInterrupt handler: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "weights", "--download", "alexnet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert mirror.stalled.wait(120), "the download never started"
        time.sleep(0.5)  # let the client write what it received
        parts = _files(online)
        assert len(parts) == 1 and parts[0].startswith(f".{ALEX}.") and parts[0].endswith(".part"), parts
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "zoo: interrupted" in err, err
    assert _files(online) == []


def test_two_processes_fetching_the_same_file_end_with_one_correct_file(online, mirror, served):
    mirror.modes[INCEPTION] = "pair"  # both requests are answered together, so the downloads overlap
    env = _zoo_env(TORCH_HOME=str(online.parent.parent), ZOO_WEIGHTS_MIRROR=mirror.url,
                   published=_expected(served, INCEPTION))
    cmd = [sys.executable, "-m", "zoo", "weights", "--download", "fid_inception"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert mirror.requests == [INCEPTION, INCEPTION]
    assert _files(online) == [INCEPTION] and _sha(online / INCEPTION) == _sha(served / INCEPTION)
    said = "".join(o for o, _ in outs)
    assert said.count(f"downloaded: {INCEPTION}@") >= 1, said


# -------------------------------------------------------------------------------- offline, unreachable
def test_offline_and_unreachable_mirror_give_na_and_the_run_completes(online, mirror, served):
    def eval_(*extra, **env):
        return run_zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--scale", "4", "--metrics",
                       "psnr,lpips,fid", *extra, env=_zoo_env(TORCH_HOME=str(online.parent.parent), **env),
                       check=True).stdout

    def rows(out):
        return {line.split()[0]: line for line in out.splitlines() if re.match(r"(psnr|lpips|fid) ", line)}

    out = eval_("--offline", ZOO_WEIGHTS_MIRROR=mirror.url)
    r = rows(out)
    assert re.search(r"\b\d+\.\d{4}\b", r["psnr"]) and "n/a [1]" in r["lpips"] and "n/a [2]" in r["fid"], out
    assert f"[1] lpips: alexnet weights missing: {ALEX} is not in $TORCH_HOME/hub/checkpoints; downloads are " \
           f"off (ZOO_OFFLINE=1)" in out, out
    assert mirror.requests == []  # offline means not even a loopback request

    out = eval_(ZOO_WEIGHTS_MIRROR=f"http://127.0.0.1:{_dead_port()}/weights")
    r = rows(out)
    assert re.search(r"\b\d+\.\d{4}\b", r["psnr"]) and "n/a [1]" in r["lpips"] and "n/a [2]" in r["fid"], out
    assert "cannot reach the mirror ($ZOO_WEIGHTS_MIRROR): Connection refused" in out, out
    assert str(online) not in out and _files(online) == []


def test_hf_hub_offline_is_honoured(online, mirror, monkeypatch):
    from zoo.metrics import MetricUnavailable
    from zoo.metrics.build import build_metric

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MetricUnavailable, match=r"downloads are off \(HF_HUB_OFFLINE=1\)"):
        build_metric("fid", device="cpu")
    assert mirror.requests == [] and _files(online) == []


def test_silent_host_is_given_up_within_the_connect_timeout(online, monkeypatch):
    from zoo.data.datasets import resolve_dataset
    from zoo.harness.evaluate import evaluate, load_model

    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", f"http://127.0.0.1:{silent.getsockname()[1]}")
    cpu = torch.device("cpu")
    try:
        t0 = time.perf_counter()
        report = evaluate(dataset=resolve_dataset("samples:test"), scale=4, device=cpu,
                          sr=load_model("bicubic", "sr", scale=4, device=cpu), metrics=["psnr", "lpips", "fid", "kid"])
        seconds = time.perf_counter() - t0
    finally:
        silent.close()
    by = {r.info.name: r for r in report.results}
    assert by["psnr"].available
    for name in ("lpips", "fid", "kid"):
        assert not by[name].available
        assert f"no answer from the mirror ($ZOO_WEIGHTS_MIRROR) within {D.CONNECT_TIMEOUT:g} s" in by[name].unavailable
    # one wait for the host, not one per file or metric
    assert D.CONNECT_TIMEOUT <= seconds < D.CONNECT_TIMEOUT + 8, seconds
    assert _files(online) == []


# ------------------------------------------------------------------------------------ bench run notes
def test_bench_records_downloads_and_recomputes_an_earlier_na(online, mirror, tmp_path, monkeypatch):
    from zoo.harness.bench import run_bench
    from zoo.harness.suite import Suite
    from zoo.plugins.registry import get_registry
    from zoo.store.runs import read_run

    suite = Suite(name="dl", train="samples:train", test=["samples:test"], metrics=["psnr", "lpips"],
                  colorizers=[], sr=["bicubic"], sample_images=0)
    cache = tmp_path / "cache"

    def bench(out):
        result = run_bench(suite, registry=get_registry(), out=tmp_path / out, cache_dir=cache, **quiet_local())
        meta, rows = read_run(result.run_dir)
        return meta, {r["metric"]: r for r in rows}, (result.run_dir / "leaderboard.md").read_text()

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    meta, rows, md = bench("offline")
    assert rows["lpips"]["value"] is None and "downloads are off" in rows["lpips"]["unavailable"]
    assert meta["downloaded"] == [] and "downloaded during this run" not in md
    monkeypatch.delenv("ZOO_OFFLINE")
    meta, rows, md = bench("online")  # same cache: the n/a row is not reused now that the file is there
    assert rows["lpips"]["value"] is not None and mirror.requests == [ALEX]
    assert [(d["filename"], d["source"]) for d in meta["downloaded"]] == [(ALEX, "mirror")]
    sha = _sha(online / ALEX)
    assert f"- weight files downloaded during this run (sha256 verified): {ALEX}@{sha[:10]} (from mirror)" in md
    assert str(tmp_path) not in md


# ----------------------------------------------------------------------------------------- done when
def _download_all(tmp_path: Path, served: Path) -> tuple[Path, dict[str, str], str]:
    """``zoo weights --download`` (every file) from a loopback mirror into an empty TORCH_HOME; checks what it
    said and left. Returns (checkpoint folder, the environment, the mirror's URL)."""
    mirror = Mirror(served)
    home = tmp_path / "torch_home"
    env = _zoo_env(TORCH_HOME=str(home), ZOO_WEIGHTS_MIRROR=mirror.url,
                   published=_expected(served, *FILENAMES.values()))
    try:
        proc = run_zoo("weights", "--download", env=env)
    finally:
        mirror.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ckpt = home / "hub" / "checkpoints"
    assert _files(ckpt) == sorted(FILENAMES.values())
    for name in FILENAMES.values():
        assert _sha(ckpt / name) == _sha(served / name)
        assert f"downloaded: {name}@{_sha(served / name)[:10]} (" in proc.stdout, proc.stdout
    assert proc.stdout.count("sha256 verified, into $TORCH_HOME/hub/checkpoints") == 4, proc.stdout
    return ckpt, env, mirror.url


def _eval_lpips_fid(env: dict[str, str], data: str, served: Path) -> None:
    # offline now: the numbers come from the files the download left
    out = run_zoo("eval", "--sr", "bicubic", "--data", data, "--scale", "4", "--metrics", "psnr,lpips,fid",
                  env={**env, "ZOO_OFFLINE": "1"}, check=True).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if re.match(r"(psnr|lpips|fid) ", line)}
    assert set(lines) == {"psnr", "lpips", "fid"} and "n/a" not in out, out
    for metric, name in (("lpips", ALEX), ("fid", INCEPTION)):
        assert re.search(r"\s\d+\.\d{4}\s", lines[metric]), out
        assert f"{name}@{_sha(served / name)[:10]}" in lines[metric], out


def test_weights_download_fills_an_empty_torch_home_then_eval_reports_lpips_and_fid(tmp_path, served):
    ckpt, env, url = _download_all(tmp_path, served)
    rows = {r["key"]: r for r in json.loads(run_zoo("weights", "--json", env=env, check=True).stdout)["weights"]}
    assert set(rows) == set(FILENAMES)
    published = {w.key: w.sha256_prefix for w in W.BUILTIN_WEIGHTS}
    for key, r in rows.items():
        assert r["present"] and r["verified"] == "ok" and r["path"] == str(ckpt / FILENAMES[key])
        assert r["url"].startswith("https://") and r["source"] == f"{url}/{FILENAMES[key]}"
        assert r["expected"] == published[key] and r["expected"] in r["url"]
        assert r["expected_sha256"] == _sha(served / FILENAMES[key])  # the test-only substitute
    _eval_lpips_fid(env, "samples:test", served)


def test_done_when_set5_after_weights_download(tmp_path, served):
    set5 = shared_set("Set5")  # ../shared/data/Set5
    _, env, _ = _download_all(tmp_path, served)
    _eval_lpips_fid(env, str(set5), served)
