"""The performance suite: every figure of the performance issue in one run, printed as one table of ratios.

    make perf                                   # all sections; writes benchmark/perf/RESULTS.md
    python benchmark/perf/run.py --only metrics,models
    python benchmark/perf/run.py --skip grid --write /tmp/perf.md

Sections: metrics (PSNR/SSIM vs skimage, LPIPS/FID vs their packages, FID reference passes), models
(train/infer images/s, EDSR vs the conv peak, precision and compile variants, `zoo train` end to end),
grid (the default suite cold and warm), memory (peak RSS: 10 vs 100 training images; zoo run on 2000x2000
vs 8000x8000), loader (loader vs step throughput). Timing lives here, never in the unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, machine, weights_for_timing  # noqa: E402

SECTIONS = ("metrics", "models", "grid", "memory", "loader")
NOTES_HEADING = "## Notes (written by hand"  # this section of the --write file is kept across runs


def run_section(name: str, torch_home: str, real: bool) -> list[Row]:
    if name == "metrics":
        import metrics

        return (metrics.pixel_metrics() + metrics.fused_kernel_first_use()
                + metrics.lpips_timing(torch_home, real) + metrics.fid_timing(torch_home, real)
                + metrics.fid_forward_passes(torch_home))
    if name == "models":
        import models

        return models.edsr_figures() + models.model_throughput()
    if name == "grid":
        import grid

        return grid.default_grid()
    if name == "memory":
        import memory

        return memory.training_memory() + memory.run_memory()
    if name == "loader":
        import loader

        return loader.loader_throughput()
    raise ValueError(name)


def render(rows: list[Row], info: dict[str, str], command: str, seconds: float) -> str:
    def ok(r):
        return {True: "yes", False: "**no**", None: ""}[r.ok]

    lines = [
        "# Performance results",
        "",
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `{command}` "
        f"({seconds / 60:.1f} min).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "| section | figure | zoo | reference | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        cells = [r.section, r.figure, r.value, r.reference, ratio, r.target, ok(r), r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _from_earlier(note: str) -> str:
    # once: a row kept across several runs is still just "from the earlier run"
    base = re.sub(r"(; )?from the earlier run", "", note)
    return (base + "; " if base else "") + "from the earlier run"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    ap.add_argument("--skip", default="", help="sections to leave out")
    ap.add_argument("--write", default=None, metavar="FILE", help="also write the table (markdown) here")
    ap.add_argument("--keep", default=None, metavar="FILE.json",
                    help="rows of the sections not run now are taken from this earlier result (marked so)")
    args = ap.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s and s not in args.skip.split(",")]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    earlier: list[Row] = []
    if args.keep:  # read it now: a bad file must stop the run before, not after, half an hour of timing
        try:
            earlier = [Row(**r) for r in json.loads(Path(args.keep).read_text())]
        except (OSError, ValueError, TypeError) as exc:
            ap.error(f"--keep {args.keep}: cannot read earlier results ({exc})")
    command = "python benchmark/perf/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        torch_home, real = weights_for_timing(Path(tmp) / "torch_home")
        os.environ["TORCH_HOME"] = torch_home
        for name in chosen:
            print(f"-- {name}", file=sys.stderr, flush=True)
            try:
                section = run_section(name, torch_home, real)
            except Exception as exc:  # one broken section must not lose the others' figures
                traceback.print_exc()
                section = [Row(name, "section failed", "error", note=f"{type(exc).__name__}: {exc}"[:300])]
            for r in section:
                print(f"   {r.figure}: {r.value} | {r.reference} | "
                      f"{'' if r.ratio is None else f'{r.ratio:.2f}'} | {r.note}", file=sys.stderr, flush=True)
            rows += section
    if earlier:
        rows += [Row(**{**r.__dict__, "note": _from_earlier(r.note)}) for r in earlier if r.section not in chosen]
        rows.sort(key=lambda r: SECTIONS.index(r.section) if r.section in SECTIONS else len(SECTIONS))
    text = render(rows, machine(), command.strip(), time.perf_counter() - t0)
    print(text)
    if args.write:
        out = Path(args.write)
        if out.exists():  # hand-written notes below the table outlive the table's regeneration
            old = out.read_text()
            if NOTES_HEADING in old:
                text += "\n" + old[old.index(NOTES_HEADING):]
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=str))
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
