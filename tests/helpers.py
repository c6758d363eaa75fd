"""Helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_set(name: str) -> Path:
    """A standard test set from ../shared/data, or a skip that says why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{name} is not present at {path} (the shared data sets sit beside the checkout)")
    return path


def make_dist(site: Path, dist: str, module: str, source: str, entry_point: str | None = None,
              version: str = "0.1") -> Path:
    """Write an installed distribution (module + dist-info with a 'zoo' entry point) into ``site``.

    This is what pip leaves behind, so importlib.metadata finds it exactly as it finds a real plugin.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point or module} = {module}\n")
    (info / "RECORD").write_text("")
    return site


def run_zoo(*args: str, pythonpath: list[Path] = (), env: dict | None = None, check: bool = False):
    """Run the real CLI in a subprocess (fresh interpreter, real entry-point discovery)."""
    full_env = {**os.environ, **(env or {})}
    paths = [str(p) for p in pythonpath] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- the command line in this process, and what a hostile-use test asserts about it ---------------------


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __str__(self):
        return f"exit {self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def zoo_cli(*args: str, err: io.StringIO | None = None) -> Result:
    """``zoo ARGS`` in this process: exit code, stdout, stderr (into ``err`` if given, to watch it from another
    thread). An exception that escapes the CLI fails the test with its traceback, as it would show a user."""
    from zoo.cli import main

    out, err = io.StringIO(), err if err is not None else io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(rc, out.getvalue(), err.getvalue())


def refused(res: Result, *needles: str, rc: int = 2) -> str:
    """Assert ``res`` is one ``zoo: error:`` line (containing ``needles``) and no traceback; return it."""
    assert res.rc == rc, res
    assert "Traceback" not in res.err + res.out, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("zoo: error:")]
    assert len(lines) == 1, res
    for needle in needles:
        assert needle in lines[0], res
    return lines[0]


def ok(res: Result) -> Result:
    assert res.rc == 0 and "Traceback" not in res.err, res
    return res


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Content, mode and mtime of every file under ``roots``: equal snapshots mean nothing was touched."""
    state = {}
    for root in roots:
        for p in sorted([root] if root.is_file() else root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                state[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns)
    return state


def strict_json(text: str):
    def bad(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=bad)


# -- image files --------------------------------------------------------------------------------------------
def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random 8-bit RGB pixels (h, w, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    """``arr`` written as an image file (format from the suffix), folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def smooth_images(n: int, size: int = 64, seed: int = 0):
    """``n`` smooth random RGB images (n, 3, size, size) in [0, 1]: bicubic upsampling of 6x6 noise."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


# -- a tiny trainable SR model for plugin tests ------------------------------------------------------------
def tiny_sr_parts():
    """``(Config, Net, Recipe)``: a one-convolution SR model that follows the plugin contract."""
    from dataclasses import dataclass

    import torch

    import zoo

    @dataclass
    class TinyConfig(zoo.SRConfig, zoo.TrainConfig):
        batch_size: int = 2
        patch_size: int = 8
        width: int = 4

    class TinySR(zoo.SuperResolver):
        def __init__(self, cfg):
            super().__init__(cfg.scale)
            self.conv = torch.nn.Conv2d(3, 3 * cfg.scale**2, 3, padding=1)
            self.up = torch.nn.PixelShuffle(cfg.scale)

        def forward(self, rgb):
            return self.up(self.conv(rgb))

    class L1Recipe(zoo.Recipe):
        def start_stage(self, stage):
            self.optimizers["main"] = torch.optim.Adam(self.model.parameters(), lr=1e-2)

        def training_step(self, batch, stage, step):
            return {"l1": self.backward_step((self.model(batch["lr"]) - batch["hr"]).abs().mean(), "main")}

    return TinyConfig, TinySR, L1Recipe


def upscale_tiled(rgb, sr, tile: int, overlap: int):
    """``sr`` over (1, 3, H, W) in tiles of ``tile`` pixels with ``overlap`` pixels of context, the whole output
    in memory: the reference ``zoo run``'s streamed tiles are checked against."""
    import torch

    from zoo.harness.apply import _crop, _tiles

    s = sr.scale
    _, c, h, w = rgb.shape
    with torch.inference_mode():
        if h <= tile and w <= tile:
            return sr(rgb)
        out = torch.empty((1, c, h * s, w * s), dtype=rgb.dtype, device=rgb.device)
        for y0, y1, x0, x1, (ya, yb, xa, xb) in _tiles(h, w, tile, overlap):
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = _crop(sr(rgb[:, :, ya:yb, xa:xb]), y0 - ya, x0 - xa,
                                                           y1 - y0, x1 - x0, s)
        return out


def quiet_local() -> dict:
    """``run_bench`` options for a test: the local executor without a progress bar or loader processes, no log."""
    from zoo.harness.executors import LocalExecutor

    return {"executor": LocalExecutor(progress=False, workers=0), "log": lambda *_: None}
