"""Wall time of CLI commands that should not need torch: ``zoo --help``, ``zoo list``, a shell completion.

Each command runs ``--runs`` times in a fresh interpreter (``python -m zoo``, as the ``zoo`` script does);
the table gives the minimum and the median, and whether torch was imported. ``--src`` times another source
tree, e.g. the code before a change::

    git archive <commit> | tar -x -C /tmp/zoo-before
    python benchmark/scripts/cli_startup.py --src /tmp/zoo-before
    python benchmark/scripts/cli_startup.py                          # this checkout

The first ``zoo list`` after a plugin changes imports the plugins (and torch) and writes the listing cache;
the runs after it read the cache. Each command runs once first (``first s``: with an empty cache, counting
every model's parameters), then ``--runs`` more times (``min s``, ``median s``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Prints whether torch got imported, after running the CLI in-process (exit codes ignored).
PROBE = """
import sys
sys.argv = ["zoo", *sys.argv[1:]]
try:
    from zoo.cli import main
    main(sys.argv[1:])
except SystemExit:
    pass
print("TORCH" if "torch" in sys.modules else "NOTORCH", file=sys.stderr)
"""

COMMANDS = {
    "python -c pass": ([sys.executable, "-c", "pass"], {}),
    "zoo --help": ([sys.executable, "-c", PROBE, "--help"], {}),
    "zoo list": ([sys.executable, "-c", PROBE, "list"], {}),
    "complete 'zoo train --model e'": (
        [sys.executable, "-c", PROBE],
        {"_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": "zoo train --model e", "COMP_CWORD": "3"}),
}


def time_command(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, list[float], bool]:
    """The first run's time (empty listing cache, cold disk cache), the later runs' times, torch imported."""
    times, torch_seen = [], False
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True)  # warm-up: disk cache, listing cache
    first = time.perf_counter() - t0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        torch_seen = torch_seen or "TORCH" in proc.stderr.split()
    return first, times, torch_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=REPO, help="source tree to time (default: this checkout)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    src = args.src.resolve()
    with tempfile.TemporaryDirectory() as cache:
        base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(src / "plugins")]), "ZOO_CACHE": cache}
        print(f"source {src}, {args.runs} runs each (after one warm-up), {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'command':36s} {'first s':>8s} {'min s':>7s} {'median s':>9s}  torch imported (later runs)")
        for label, (argv, extra) in COMMANDS.items():
            first, times, torch_seen = time_command(argv, {**base, **extra}, args.runs)
            seen = "-" if label.startswith("python") else ("yes" if torch_seen else "no")
            print(f"{label:36s} {first:8.2f} {min(times):7.2f} {statistics.median(times):9.2f}  {seen}")


if __name__ == "__main__":
    main()
