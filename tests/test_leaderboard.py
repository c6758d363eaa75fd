"""Leaderboard rendering from a fixed results file (golden file), merging and formats."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from zoo.boards.leaderboard import render, render_markdown
from zoo.errors import ZooError
from zoo.store.runs import read_run

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
    section = md.split("\n## Pipeline")[1].split("\n## ")[0]
    header = section.splitlines()[4]
    assert "| kid ↓ " in header and "| kid ↓ (2) " in header  # two columns, never one
    legend = next(line for line in section.splitlines() if line.startswith("Columns: "))
    assert "`kid ↓` Inception pool3, weights pt_inception.pth@abc123" in legend
    assert "`kid ↓ (2)` Inception pool3, weights other_inception.pth@ffff00" in legend


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


def test_notes_name_data_relative_to_where_the_command_runs(tmp_path, monkeypatch):
    meta, rows = read_run(GOLDEN / "run")
    meta["suite"]["train"] = str(tmp_path / "shared" / "data" / "train")  # suites store absolute paths
    meta["downloaded"] = [{"filename": "alexnet-owt-7be5be79.pth", "sha256": "ab" * 32, "size": 1,
                           "source": "mirror", "seconds": 0.1}]
    (tmp_path / "shared").mkdir()
    monkeypatch.chdir(tmp_path / "shared")
    md = render_markdown([(meta, rows)])
    assert "train `data/train`" in md and str(tmp_path) not in md
    assert ("- weight files downloaded during this run (sha256 verified): "
            f"alexnet-owt-7be5be79.pth@{'ab' * 5} (from mirror)") in md


def _absolute_paths(text: str) -> list[str]:
    """Absolute filesystem paths in ``text`` (URLs are not: their '//' follows a scheme)."""
    return re.findall(r"(?:^|[\s`(\[])((?:/[\w.~-]+){2,})", text, re.M)


def test_published_leaderboards_carry_no_absolute_path():
    boards = sorted((Path(__file__).resolve().parents[1] / "leaderboard").glob("*.md"))
    assert boards
    assert _absolute_paths("see /root/.cache/torch and `/work/shared/data/train` or https://x.org/a/b") == [
        "/root/.cache/torch", "/work/shared/data/train"]
    for board in boards:
        assert _absolute_paths(board.read_text()) == [], board.name


def test_a_preset_changed_by_the_suite_is_named_as_it_ran():
    meta, rows = read_run(GOLDEN / "run")
    meta = {**meta, "suite": {**meta["suite"], "preset": "paper",
                              "overrides": {"edsr": {"patch_size": 32, "lr": 2e-4}}}}
    md = render_markdown([(meta, rows)])
    assert "- preset `paper` as changed by the suite: edsr: lr=0.0002, patch_size=32" in md
    assert "as changed by the suite" not in render([GOLDEN / "run"])  # the golden run has no overrides


def _stage_rows(stage: str, key: str, values: dict[str, dict[str, float]]) -> list[dict]:
    return [{"stage": stage, key: name, "test_set": "samples:test", "scale": 2, "metric": metric, "value": v,
             "higher_is_better": True, "ranked": True, "unit": "", "convention": "", "n": 3}
            for name, by_metric in values.items() for metric, v in by_metric.items()]


def test_each_stage_ranks_by_its_headline_metric_whatever_the_column_order(tmp_path):
    meta, _ = read_run(GOLDEN / "run")
    # colour metrics listed first, as color-classic does: an SR table still ranks by PSNR (given the true
    # colours, every SR model's AuC is near 100 %), a colorizer table by the rebalanced AuC
    rows = _stage_rows("sr", "sr", {"bicubic": {"auc_raw": 99.1, "psnr": 30.6},
                                    "edsr": {"auc_raw": 98.9, "psnr": 32.1}})
    rows += _stage_rows("colorizer", "colorizer", {"gray": {"auc_raw": 88.0, "auc_rebal": 68.4, "psnr": 42.7},
                                                   "zhang": {"auc_raw": 86.4, "auc_rebal": 72.4, "psnr": 42.5}})
    md = render_markdown([({**meta, "suite": {**meta["suite"], "metrics": ["auc_raw", "auc_rebal", "psnr"]}}, rows)])
    sr = md.split("## Super-resolution alone")[1].split("\n## ")[0]
    col = md.split("## Colorization alone")[1].split("\n## ")[0]
    assert sr.index("| edsr ") < sr.index("| bicubic ")
    assert col.index("| zhang ") < col.index("| gray ")


def test_the_training_table_shows_each_models_loss_first_and_last_tenth():
    meta, rows = read_run(GOLDEN / "run")
    assert "## Training" not in render([GOLDEN / "run"])  # a run from before the summaries: no table
    models = {name: dict(info) for name, info in meta.get("models", {}).items()}
    first, second = sorted(models)[:2]
    models[first]["loss"] = {"loss": "mse", "train": [0.04, 0.03], "held_out": [0.05, 0.045],
                             "reference": [0.0625, 0.06]}
    models[first]["validated_on"] = "Set14"
    models[second]["loss"] = {"loss": "l1", "train": [0.2, 0.21], "held_out": None}
    md = render_markdown([({**meta, "models": models}, rows)])
    table = md.split("## Training", 1)[1].split("## Notes", 1)[0]
    assert "Held-out: fixed crops of `Set14`, never trained on." in table
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| {first.split('@')[0]} "))
    assert "-25.0 %" in line and "-10.0 %" in line and "`mse`" in line
    assert "0.800 -> 0.750" in line and "Held-out / untrained:" in table  # 0.05 / 0.0625, 0.045 / 0.06
    other = next(ln for ln in table.splitlines() if ln.startswith(f"| {second.split('@')[0]} "))
    assert "+5.0 %" in other and other.count("%") == 1  # no held-out columns filled for a run without them


def test_loss_summary_takes_the_main_loss_of_both_tenths(tmp_path):
    from zoo.store.runs import VAL_LOG, loss_summary

    log = [{"step": s, "stage": "a" if s <= 10 else "b", **({"mse": 1.0} if s <= 10 else {}), "l1": 2.0 - s / 20}
           for s in range(1, 21)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (tmp_path / VAL_LOG).write_text(json.dumps({"step": 2, "l1": 1.0}) + "\n" + json.dumps({"step": 20, "l1": 0.5})
                                    + "\n" + '{"step": 2')  # a torn last line is dropped
    summary = loss_summary(tmp_path, 20)
    # mse only in the first stage: the main loss is the first one both tenths logged
    assert summary == {"loss": "l1", "train": [pytest.approx(1.925), pytest.approx(1.025)], "held_out": [1.0, 0.5],
                       "reference": None}  # lines without a reference (a recipe without reference_losses)
    assert loss_summary(tmp_path / "none", 20) is None
