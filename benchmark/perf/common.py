"""Shared pieces of the performance suite: timing, result rows, the machine description, weights for timing."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass
class Row:
    """One measured figure. ``ratio`` compares ``value`` with ``reference`` (how is said in ``figure``);
    ``target`` is the issue's bar as text and ``ok`` whether it was met (None: no bar)."""

    section: str
    figure: str
    value: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # numpy scalars (np.bool_, np.float64) would reach the JSON file as strings ("True"), and an earlier
        # file read back with --keep would then not render: plain Python values only, old files repaired.
        if isinstance(self.ok, str):
            self.ok = {"True": True, "False": False}.get(self.ok)
        elif self.ok is not None:
            self.ok = bool(self.ok)
        if self.ratio is not None:
            self.ratio = float(self.ratio)


def run_times(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_time(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 1) -> float:
    """The fastest call (the usual timeit rule: the run least disturbed by the rest of the machine)."""
    return min(run_times(fn, repeat=repeat, warmup=warmup))


def median_time(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 1) -> float:
    """The typical call, to compare with averages over many steps."""
    return statistics.median(run_times(fn, repeat=repeat, warmup=warmup))


def interleaved_times(fns: dict[str, Callable[[], object]], *, rounds: int = 3,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each call of each of ``fns``, called in turn, ``rounds`` times round the circle.

    On a shared host the load drifts over minutes; timing two things in alternation exposes both to the
    same drift, where timing one after the other can hand one of them a quiet spell (this host's
    figures moved by up to 30% between runs).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def interleaved_best(fns: dict[str, Callable[[], object]], *, rounds: int = 3, warmup: int = 1) -> dict[str, float]:
    """The fastest call of each of ``fns``, timed in alternation (:func:`interleaved_times`)."""
    return {name: min(t) for name, t in interleaved_times(fns, rounds=rounds, warmup=warmup).items()}


def train_data_spec() -> str:
    """The classic SR training sets beside the checkout when present, else the embedded sample photos."""
    return str(SHARED_DATA / "train") if (SHARED_DATA / "train").is_dir() else "samples:train"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> dict[str, str]:
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": cpu_name(), "cores": str(os.cpu_count()), "simd": " ".join(simd) or "-", "memory": mem,
        "gpu": gpu, "torch": torch.__version__, "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}",
    }


def weights_for_timing(tmp: Path) -> tuple[str, bool]:
    """A TORCH_HOME with the LPIPS / FID backbones. The real files when the hub cache has them; otherwise
    random-init files of the exact architectures (built by the tests' fixture), which time the same
    computation but give meaningless scores. Returns (TORCH_HOME, real)."""
    from zoo.store.weights import hub_checkpoint_dir

    have = hub_checkpoint_dir()
    names = ("alexnet-owt-7be5be79.pth", "pt_inception-2015-12-05-6726825d.pth")
    if all((have / n).is_file() for n in names):
        return str(have.parent.parent), True
    sys.path.insert(0, str(REPO / "tests"))
    from weights_fixture import make_test_weights

    make_test_weights(tmp, which=("alexnet", "fid_inception"))
    return str(tmp), False
