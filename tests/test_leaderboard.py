"""Leaderboard rendering from a fixed results file (golden file), merging and formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.leaderboard import read_run, render, render_markdown
from helpers import run_zoo

GOLDEN = Path(__file__).parent / "golden"


def test_markdown_matches_golden_file():
    # To update after an intended change: render the run and review the diff before committing it.
    assert render([GOLDEN / "run"]) == (GOLDEN / "leaderboard.md").read_text()


def test_best_is_bold_in_the_metrics_direction():
    md = render([GOLDEN / "run"])
    pipeline = md.split("## Colorization")[0]
    assert "**27.00**" in pipeline  # psnr: higher is better
    assert "**0.0100 ± 0.0020**" in pipeline  # kid: lower is better
    assert "**12.00**" not in pipeline  # colourfulness is not ranked
    assert "n/a [1]" in pipeline and "[1] lpips: alexnet weights missing" in md


def test_merging_runs_later_row_wins_and_weights_never_share_a_column(tmp_path):
    meta, rows = read_run(GOLDEN / "run")
    newer = [dict(r) for r in rows]
    for r in newer:
        if r["metric"] == "kid":
            r["weights"] = {"other_inception.pth": "ffff00"}
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text(json.dumps(meta))
    (other / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in newer))
    md = render_markdown([read_run(GOLDEN / "run"), read_run(other)])
    header = md.split("\n## Pipeline")[1].splitlines()[4]
    assert "pt_inception.pth@abc123" in header and "other_inception.pth@ffff00" in header


def test_csv_and_cli(tmp_path):
    csv = render([GOLDEN / "run"], "csv")
    assert csv.splitlines()[0].count(",") > 10 and len(csv.splitlines()) == 1 + len(read_run(GOLDEN / "run")[1])
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "run", run)
    proc = run_zoo("leaderboard", str(run), check=True)
    assert proc.stdout == (GOLDEN / "leaderboard.md").read_text()
    bad = run_zoo("leaderboard", str(tmp_path))
    assert bad.returncode == 2 and "not a bench run directory" in bad.stderr


def test_missing_run_is_an_error(tmp_path):
    with pytest.raises(ZooError):
        read_run(tmp_path)
