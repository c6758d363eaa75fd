"""Section 4: peak RSS of training on 10 vs 100 training images of the same size, and of `zoo run` on a
2000x2000 vs an 8000x8000 photo.

Training is measured on `zoo train` (the loop `zoo bench` runs for each model), so the figure is the
training's own: a whole `zoo bench` run peaks in evaluation (the Inception network on full-size test images),
which hides it. `zoo run` streams tiles into its output (issue 20, section 5): its peak must not grow with
the image beyond the decoded picture itself.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, Row
from grid import zoo_command

SIDE = 480


def write_images(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` distinct SIDE x SIDE PNGs cut from the embedded sample photographs (random crops and flips)."""
    from PIL import Image

    from zoo.data.datasets import resolve_dataset

    ds = resolve_dataset("samples:train")
    photos = [ds[i].load() for i in range(len(ds))]
    photos = [p for p in photos if min(p.shape[-2:]) >= SIDE]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = photos[i % len(photos)]
        y = int(rng.integers(0, p.shape[-2] - SIDE + 1))
        x = int(rng.integers(0, p.shape[-1] - SIDE + 1))
        crop = p[:, y:y + SIDE, x:x + SIDE]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        arr = (crop.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        noise = rng.integers(-2, 3, size=arr.shape)  # every file distinct even when crops coincide
        Image.fromarray(np.clip(arr.astype(int) + noise, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def peak_rss_mib(args: list[str]) -> tuple[float, int]:
    """Peak resident set of ``zoo ARGS``, MiB: its VmHWM (high-water mark of the process's own memory),
    polled until it exits.

    Not ``ru_maxrss``: Linux carries the *parent's* high-water mark into a child across fork/vfork + exec,
    so from this (large) benchmark process every child would report this process's size.
    """
    proc = subprocess.Popen(zoo_command() + args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _vm_hwm_kib(proc.pid) or 0)
        time.sleep(0.02)
    return peak / 1024, proc.returncode


def training_memory(counts=(10, 100), steps: int = 200) -> list[Row]:
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            data = Path(tmp) / f"train{n}"
            write_images(data, n)
            # enough steps that the loader reads every image
            peaks[n], rc = peak_rss_mib(["train", "--model", "edsr", "--preset", "tiny", "--data", str(data),
                                         "--steps", str(steps), "--out", str(Path(tmp) / f"run{n}")])
            if rc != 0:
                return [Row("memory", f"zoo bench training on {n} images", "failed", note=f"exit code {rc}")]
    a, b = counts
    ratio = peaks[b] / peaks[a]
    return [Row("memory", f"peak RSS of zoo train (edsr tiny, {steps} steps) on {b} vs {a} "
                          f"training images of {SIDE}x{SIDE}", f"{peaks[b]:.0f} MiB", f"{peaks[a]:.0f} MiB",
                ratio, "ratio <= 1.2", ok=ratio <= 1.2,
                note="images are streamed from disk; the decoded-image cache is bounded (256 MB by default)")]


def write_photo(path: Path, side: int, seed: int = 0) -> None:
    """A side x side PNG: an embedded sample photograph scaled up, with noise (so it compresses like a photo)."""
    from PIL import Image

    from zoo.data.datasets import resolve_dataset

    base = Image.open(resolve_dataset("samples:test")[0].path).convert("RGB").resize((side, side), Image.BICUBIC)
    arr = np.asarray(base).astype(np.int16) + np.random.default_rng(seed).integers(-3, 4, (side, side, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, compress_level=1)


def run_memory(sides=(2000, 8000)) -> list[Row]:
    """Peak RSS of `zoo run --colorizer gray --sr bicubic` (x2) on photos of each side."""
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            src = Path(tmp) / f"photo{side}.png"
            write_photo(src, side)
            peaks[side], rc = peak_rss_mib(["run", str(src), "-o", str(Path(tmp) / f"out{side}"), "--colorizer",
                                            "gray", "--sr", "bicubic"])
            if rc != 0:
                return [Row("memory", f"zoo run on a {side}x{side} photo", "failed", note=f"exit code {rc}")]
            src.unlink()
    small, big = sides
    ratio = peaks[big] / peaks[small]
    return [Row("memory", f"peak RSS of zoo run (gray + bicubic x2, tile 256) on a {big}x{big} vs a "
                          f"{small}x{small} photo", f"{peaks[big]:.0f} MiB", f"{peaks[small]:.0f} MiB", ratio,
                "ratio <= 1.5", ok=ratio <= 1.5,
                note=f"{(big / small) ** 2:.0f}x the pixels; tiles streamed into the PNG; what grows is the decoded "
                     "input (Pillow keeps 4 bytes per pixel)")]
