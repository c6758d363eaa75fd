"""Helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
