"""Section 3: the `default` suite cold (empty cache) and warm (everything cached), and its job count."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, Row


def zoo_command() -> list[str]:
    return [sys.executable, "-m", "zoo"]


def run_zoo(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(zoo_command() + args, cwd=REPO, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def default_grid(suite: str = "default") -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        walls, metas = [], []
        for label in ("cold", "warm"):
            out = Path(tmp) / f"run-{label}"
            wall, proc = run_zoo(["bench", "--suite", suite, "--cache", str(cache), "--out", str(out)])
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                return [Row("grid", f"zoo bench --suite {suite}", "failed", note=" | ".join(tail))]
            walls.append(wall)
            metas.append(json.loads((out / "run.json").read_text()))
    cold, warm = walls
    meta = metas[0]
    c, s = len(meta["colorizers"]), len(meta["sr"])
    trainable = meta["train_jobs"]
    return [
        Row("grid", f"zoo bench --suite {suite}: wall time cold / warm", f"{cold:.1f} s / {warm:.1f} s",
            ratio=warm / cold, target="warm < 5% of cold", ok=warm / cold < 0.05,
            note=f"warm run trained {metas[1]['trained_now']} models"),
        Row("grid", f"training jobs for {c} colorizers x {s} SR models (baselines included)",
            f"{trainable} trained", f"{c * s} combinations", target="C + S (trainable only), not C x S",
            ok=trainable <= c + s, note=f"{meta['trained_now']} trained in the cold run"),
    ]
