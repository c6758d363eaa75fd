"""`zoo run` on user photos (tiles, colour trick, bad files, no overwrite) and safe checkpoint loading."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.color import split_lab
from zoo.data.datasets import resolve_dataset
from zoo.data.imageio import read_image
from zoo.errors import ZooError
from zoo.harness.apply import RunOptions, run_pipeline
from zoo.harness.evaluate import load_model
from zoo.plugins.registry import get_registry
from zoo.store.checkpoint import import_state_dict, load_checkpoint, save_checkpoint

from helpers import run_zoo, upscale_tiled

CPU = torch.device("cpu")


def _photo(path, size=(300, 220)):
    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(resolve_dataset("samples:test")[0].path).convert("RGB").resize(size))
    noise = rng.integers(0, 8, base.shape, dtype=np.uint8)
    Image.fromarray(base // 2 + noise).save(path)
    return path


def test_tiled_upscaling_equals_whole_image():
    sr = load_model("bicubic", "sr", scale=3, device=CPU).module
    img = read_image(resolve_dataset("samples:test")[0].path)[None, :, :150, :170]
    whole = sr(img)
    tiled = upscale_tiled(img, sr, tile=48, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 450, 510)
    assert torch.equal(tiled, whole)


def test_colour_is_joined_to_the_full_resolution_lightness(tmp_path):
    from zoo.plugins.registry import get_registry

    entry = get_registry().get("vgg_decoder")
    col = entry.create("tiny").eval()
    src = _photo(tmp_path / "in.png")
    summary = run_pipeline([src], tmp_path / "out", colorizer=col, sr=None, device=CPU,
                           options=RunOptions(color_size=64))
    out = read_image(summary.written[0])[None]
    l_in, _ = split_lab(read_image(src)[None])
    l_out, _ = split_lab(out)
    # The colorizer saw a 64-px image; the output keeps the input's own lightness (up to gamut clipping
    # and 8-bit rounding).
    assert out.shape[-2:] == (220, 300)
    assert (l_out - l_in).abs().median() < 0.5


def test_streamed_run_equals_the_whole_image_computation(tmp_path):
    # zoo run streams tiles and bands; the result is the one of colorizing and upscaling the whole image at once
    from zoo.harness.apply import colorize

    torch.manual_seed(0)
    col = get_registry().get("unet_vae").create("tiny").eval()
    sr = load_model("bicubic", "sr", scale=2, device=CPU).module
    src = _photo(tmp_path / "in.png", size=(301, 223))
    summary = run_pipeline([src], tmp_path / "out", colorizer=col, sr=sr, device=CPU,
                           options=RunOptions(color_size=64, tile=64, preview=True))
    got = np.asarray(Image.open(summary.written[0]))
    with torch.inference_mode():
        l, _ = split_lab(read_image(src)[None])
        from zoo.data.color import join_lab

        whole = upscale_tiled(join_lab(l, colorize(l, col, 64)).clamp(0, 1), sr, 64, 16).clamp(0, 1)
    expected = (whole[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert got.shape == expected.shape == (446, 602, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1  # float rounding of the per-tile upsampling at most
    assert Image.open(tmp_path / "out" / "in_preview.png").size == (691 * 2 + 8, 512)


@pytest.mark.parametrize("width,rows", [(1, 1), (37, 5), (64, 33)])
def test_streamed_png_decodes_to_its_rows(tmp_path, width, rows):
    import io

    from zoo.data.pngstream import PngWriter

    arr = np.random.default_rng(width).integers(0, 256, (rows, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    png = PngWriter(buf, width, rows)
    for y in range(0, rows, 4):  # bands of any height
        png.write(arr[y:y + 4])
    png.close()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))), arr)


def test_cli_run_skips_bad_files_and_never_overwrites(tmp_path):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    _photo(inputs / "a.png")
    _photo(inputs / "b.jpg", size=(97, 61))
    (inputs / "broken.png").write_bytes((inputs / "a.png").read_bytes()[:200])
    out = tmp_path / "out"
    proc = run_zoo("run", str(inputs), "-o", str(out), "--colorizer", "gray", "--sr", "bicubic", "--preview",
                   "--tile", "64", check=True)
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_preview.png", "b.png", "b_preview.png"]
    assert Image.open(out / "a.png").size == (600, 440) and Image.open(out / "b.png").size == (194, 122)
    before = (out / "a.png").stat().st_mtime_ns
    again = run_zoo("run", str(inputs / "a.png"), "-o", str(out), "--sr", "bicubic", check=True)
    assert "exists (use --overwrite)" in again.stdout and (out / "a.png").stat().st_mtime_ns == before
    run_zoo("run", str(inputs / "a.png"), "-o", str(out), "--sr", "bicubic", "--overwrite", check=True)
    assert (out / "a.png").stat().st_mtime_ns != before


def test_run_dir_resolves_trained_models(tmp_path):
    from zoo.training.loop import train

    entry = get_registry().get("edsr")
    result = train(entry, entry.make_config("tiny", {"scale": 2}), resolve_dataset("samples:train"), steps=2,
                   out_dir=tmp_path / "edsr", device=CPU, data_scale=2, workers=0, progress=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"suite": {"scales": [2]},
                                              "models": {"edsr@x2": {"checkpoint": str(result.checkpoint)}}}))
    src = _photo(tmp_path / "p.png", size=(40, 30))
    proc = run_zoo("run", str(src), "-o", str(tmp_path / "out"), "--run", str(run), "--sr", "edsr", check=True)
    assert "1 written" in proc.stdout and Image.open(tmp_path / "out" / "p.png").size == (80, 60)
    missing = run_zoo("run", str(src), "-o", str(tmp_path / "out2"), "--run", str(run), "--sr", "srgan")
    assert missing.returncode == 2 and "has no trained 'srgan'" in missing.stderr


# -- third-party checkpoints ---------------------------------------------------------------------------


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create a file when unpickled


def test_malicious_pickle_is_refused_and_never_executes(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"weight": _Exploit(marker)}, f)
    torch.save({"conv.weight": _Exploit(marker)}, tmp_path / "evil2.pt")
    for path in (evil, tmp_path / "evil2.pt"):
        with pytest.raises(ZooError, match="refusing to load"):
            import_state_dict(path)
        assert not marker.exists()
    proc = run_zoo("eval", "--sr", str(evil), "--data", "samples:test")
    assert proc.returncode == 2 and not marker.exists()
    assert "safetensors" in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoint_for_unregistered_model_or_wrong_shapes_is_refused(tmp_path):
    entry = get_registry().get("edsr")
    model = entry.create("tiny", scale=2)
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"model": "edsr", "config": {"blocks": 4,
                           "features": 16, "scale": 2}})
    assert load_checkpoint(path).model.scale == 2
    meta = json.loads(path.with_suffix(".json").read_text())
    wrong = tmp_path / "wrong.safetensors"
    shutil.copy(path, wrong)
    (tmp_path / "wrong.json").write_text(json.dumps({**meta, "config": {**meta["config"], "features": 32}}))
    with pytest.raises(ZooError, match="does not fit model config"):
        load_checkpoint(wrong)
    alien = tmp_path / "alien.safetensors"
    shutil.copy(path, alien)
    (tmp_path / "alien.json").write_text(json.dumps({**meta, "model": "definitely_not_registered"}))
    with pytest.raises(ZooError, match="which is not registered here"):
        load_checkpoint(alien)
