"""zoo.store.weights: the weight table and hash checks, and the random test weight files' architectures."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ is not a package
from zoo.store import weights as W  # noqa: E402

from weights_fixture import FILENAMES  # noqa: E402  (its fixtures come from conftest.py)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _put(ckpt: Path, name: str, data: bytes) -> str:
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_hub_dir_follows_torch_home(home):
    assert W.hub_checkpoint_dir() == home
    assert W.ALEXNET.path == home / W.ALEXNET.filename


def test_weight_table_present_and_missing(home):
    digest = _put(home, W.ALEXNET.filename, b"not really alexnet")
    extra = W.WeightFile("mymodel", "mymodel-v1.pth", "https://example.invalid/mymodel-v1.pth", "a plugin's model")
    rows = {r["filename"]: r for r in W.weight_table([extra, W.VGG19])}  # VGG19 repeated: listed once
    assert len(rows) == len(W.BUILTIN_WEIGHTS) + 1
    a = rows[W.ALEXNET.filename]
    assert a["present"] and a["name"] == a["key"] == "alexnet" and a["size"] == len(b"not really alexnet")
    assert a["sha256"] == digest[:10] and a["path"] == str(home / W.ALEXNET.filename)
    assert a["expected"] == "7be5be79" and a["purpose"] == W.ALEXNET.purpose
    for name in (W.VGG16.filename, W.VGG19.filename, W.FID_INCEPTION.filename, "mymodel-v1.pth"):
        assert not rows[name]["present"] and rows[name]["size"] is None and rows[name]["sha256"] is None
    assert rows["mymodel-v1.pth"]["purpose"] == "a plugin's model"
    assert not home.joinpath(W.VGG16.filename).exists()  # listing never creates anything


def _check_weights(extra=()) -> dict[str, str]:
    """filename -> zoo.store.weights.check_weight of every known file (built-ins plus ``extra``)."""
    return {w.filename: W.check_weight(w) for w in W.known_weights(extra)}


def test_check_weights_statuses(home):
    digest = _put(home, W.ALEXNET.filename, b"random bytes")
    _put(home, "nohash.pth", b"x")
    good_digest = _put(home, "good.pth", b"good")
    nohash = W.WeightFile("nohash", "nohash.pth", "https://example.invalid/nohash.pth", "test")
    good = W.WeightFile("good", "good.pth", "https://example.invalid/good.pth", "test", good_digest[:8])
    status = _check_weights([nohash, good])
    assert status[W.ALEXNET.filename] == f"MISMATCH (expected 7be5be79, got {digest[:8]})"
    assert status["nohash.pth"] == "no published hash"
    assert status["good.pth"] == "ok"
    assert status[W.VGG16.filename] == "missing"
    assert W.sha256_prefix(W.ALEXNET) == digest[:10] and W.sha256_prefix(W.VGG16) is None


def test_random_test_weights_are_flagged_and_have_exact_architectures(test_torch_home):
    import torchvision

    from weights_fixture import _fid_inception_architecture

    assert W.hub_checkpoint_dir() == test_torch_home / "hub" / "checkpoints"
    status = _check_weights()
    for w in W.BUILTIN_WEIGHTS:
        assert w.filename == FILENAMES[w.key]
        assert status[w.filename].startswith(f"MISMATCH (expected {w.sha256_prefix}, got "), status
    assert all(r["present"] and r["size"] > 0 for r in W.weight_table())

    builders = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16,
                "vgg19": torchvision.models.vgg19, "fid_inception": _fid_inception_architecture}
    for key, build in builders.items():
        with torch.device("meta"):
            ref = {k: tuple(v.shape) for k, v in build().state_dict().items()}
        state = torch.load(W.hub_checkpoint_dir() / FILENAMES[key], map_location="cpu", weights_only=True)
        assert {k: tuple(v.shape) for k, v in state.items()} == ref, key
    # and the real loader of each file accepts it (strict load, no download: the file is present)
    net = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1)
    assert float(net.features[0].weight.detach().abs().sum()) > 0


def test_weights_fixture_leaves_the_environment_alone(test_weights_dir):
    # the session fixture builds files only; TORCH_HOME is set per test by test_torch_home
    assert W.hub_checkpoint_dir() != test_weights_dir / "hub" / "checkpoints"


# ------------------------------------------------------------------------- files that are not plain tensors
class _Trap:
    """Unpickling this opens (creates) ``marker``: what a booby-trapped weight file could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _booby_trap(ckpt: Path, filename: str, marker: Path) -> Path:
    ckpt.mkdir(parents=True, exist_ok=True)
    path = ckpt / filename
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11), "payload": _Trap(marker)}, path)
    return path


def test_booby_trapped_weight_files_are_refused_never_run(home, tmp_path, monkeypatch):
    from zoo.metrics import MetricUnavailable
    from zoo.metrics.build import build_metric
    from zoo.training.losses import VGGFeatureLoss

    from helpers import run_zoo

    marker = tmp_path / "code-ran"
    for w in (W.ALEXNET, W.FID_INCEPTION, W.VGG19):
        _booby_trap(home, w.filename, marker)
    # the trap is live: an unsafe load (what torch.hub.load_state_dict_from_url does) runs it
    torch.load(home / W.ALEXNET.filename, weights_only=False)
    assert marker.exists()
    marker.unlink()

    for metric, w in (("lpips", W.ALEXNET), ("fid", W.FID_INCEPTION), ("kid", W.FID_INCEPTION)):
        with pytest.raises(MetricUnavailable) as err:
            build_metric(metric, device="cpu", cache_dir=tmp_path / "features")
        msg = str(err.value)
        assert msg.startswith(f"{w.filename} in $TORCH_HOME/hub/checkpoints refused: it holds more than "
                              f"tensors") and "io.open" in msg and "\n" not in msg, msg
    with pytest.raises(W.WeightsRefused, match="refused: it holds more than tensors"):
        VGGFeatureLoss.from_hub("relu2_2")
    assert not marker.exists()

    # the CLI: that metric n/a with the reason on one line, every other number produced, no traceback
    proc = run_zoo("eval", "--sr", "bicubic", "--data", "samples:test", "--scale", "4", "--metrics",
                   "psnr,lpips,fid", env={"TORCH_HOME": str(home.parent.parent)}, check=True)
    assert not marker.exists()
    lines = proc.stdout.splitlines()
    assert any(line.startswith("psnr") and "n/a" not in line for line in lines), proc.stdout
    notes = [line for line in lines if line.startswith("[")]
    assert len(notes) == 2 and all("refused: it holds more than tensors" in n for n in notes), proc.stdout
    assert "Traceback" not in proc.stderr and "UnpicklingError" not in proc.stdout + proc.stderr


def test_truncated_weight_file_is_refused_with_one_line(home):
    from zoo.metrics import MetricUnavailable
    from zoo.metrics.build import build_metric

    home.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, home / W.ALEXNET.filename)
    data = (home / W.ALEXNET.filename).read_bytes()
    (home / W.ALEXNET.filename).write_bytes(data[: len(data) // 2])
    readable = r"alexnet-owt-7be5be79.pth in \$TORCH_HOME/hub/checkpoints is not a readable weight file \("
    with pytest.raises(MetricUnavailable, match=readable):
        build_metric("lpips", device="cpu")
    with pytest.raises(W.WeightsRefused, match="not a readable weight file"):
        W.load_state_dict(W.ALEXNET)
