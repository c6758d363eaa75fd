"""A plugin author's walkthrough, from docs/plugins.md alone: write FSRCNN and a metric, check, bench, edit,
bench again. Exit 1 when the loop lies (an edit not retrained, or numbers that differ from an empty cache's).

    python benchmark/scripts/plugin_walkthrough.py [--keep DIR]

The plugin is the page's code blocks of sections 1 to 3, written to one file and loaded with ``zoo --plugin``
(nothing is installed). Every step is the real CLI in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"
SUITE = """train = "samples:train"
test = ["samples:test"]
metrics = ["psnr", "mae"]
sample_images = 0
preset = "tiny"
steps = 20
colorizers = []
sr = ["fsrcnn"]
"""
EDIT = ("        return self.up(self.body(rgb))\n",
        "        bicubic = F.interpolate(rgb, scale_factor=self.scale, mode=\"bicubic\", align_corners=False)\n"
        "        return bicubic + self.up(self.body(rgb))\n")


def plugin_source(doc: Path = DOC) -> str:
    """The python code blocks of the page's sections 1 to 3, as one module."""
    text = doc.read_text()
    text = text[:text.index("\n## 4.")]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return "\n\n".join(blocks)


def zoo(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_OFFLINE": "1"}
    paths = [str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    proc = subprocess.run([sys.executable, "-m", "zoo", "--plugin", str(work / "fsrcnn.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise SystemExit(f"zoo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def bench(work: Path, cache: str, out: str) -> tuple[str, int, dict[str, float]]:
    proc = zoo(work, "bench", "--suite", str(work / "suite.toml"), "--threads", "1", "--cache", str(work / cache),
               "--out", str(work / out))
    rows = [json.loads(line) for line in (work / out / "results.jsonl").read_text().splitlines()]
    scores = {r["metric"]: r["value"] for r in rows if r["sr"] == "fsrcnn"}
    trained = int(re.search(r"(\d+) of \d+ models trained now", proc.stdout).group(1))
    return proc.stdout, trained, scores


def walk(work: Path) -> list[str]:
    """The walkthrough in ``work``; the problems found (empty: the loop told the truth)."""
    (work / "fsrcnn.py").write_text(plugin_source())
    (work / "suite.toml").write_text(SUITE)
    problems = []
    checked = zoo(work, "check", "fsrcnn", check=False)
    print(checked.stdout.strip().splitlines()[-1])
    if checked.returncode:
        problems.append(f"zoo check fsrcnn failed:\n{checked.stdout}")
    metric = zoo(work, "check", "--metrics", "mae", check=False)
    print(metric.stdout.strip().splitlines()[-1])
    if metric.returncode:
        problems.append(f"zoo check --metrics mae failed:\n{metric.stdout}")

    _, trained, first = bench(work, "cache", "run1")
    print(f"bench 1: trained {trained}, {first}")
    said, trained_again, again = bench(work, "cache", "run2")
    print(f"bench 2 (nothing edited): trained {trained_again}, {again}")
    if trained_again or again != first or "code changed" in said:
        problems.append("an unchanged rerun retrained or changed its numbers")

    source = (work / "fsrcnn.py").read_text()
    if EDIT[0] not in source:
        raise SystemExit("docs/plugins.md's forward() changed: update EDIT in this script")
    (work / "fsrcnn.py").write_text(source.replace(EDIT[0], EDIT[1]))
    said, trained_edit, edited = bench(work, "cache", "run3")
    print(f"bench 3 (forward edited): trained {trained_edit}, {edited}")
    if "fsrcnn: code changed since the cached run, retraining" not in said or trained_edit != 1:
        problems.append(f"the edit was not retrained with the message:\n{said}")
    _, _, fresh = bench(work, "fresh-cache", "run4")
    print(f"bench 4 (empty cache): {fresh}")
    if edited != fresh:
        problems.append(f"after the edit the bench reported {edited}, an empty cache gives {fresh}")
    if edited == first:
        problems.append("the edit changed nothing: the walkthrough tests nothing")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        problems = walk(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="zoo-walkthrough-") as tmp:
            problems = walk(Path(tmp))
    for p in problems:
        print(f"PROBLEM: {p}")
    print("the edit-run loop told the truth" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
