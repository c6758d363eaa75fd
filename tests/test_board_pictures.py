"""A published markdown board carries its comparison pictures: drawn from the run's saved outputs into a
folder beside the board, linked relatively, regenerated without stale files."""

from __future__ import annotations

import re

from PIL import Image

from helpers import ok, zoo_cli


def _links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_a_board_written_to_a_file_shows_every_stage_it_scored(bench_run, tmp_path):
    run_dir, table = bench_run
    board = tmp_path / "pub" / "smoke.md"
    ok(zoo_cli("leaderboard", run_dir, "-o", board))
    md = board.read_text()
    links = _links(md)
    stages = set(table["stage"])
    assert links and "## Pictures" in md
    for stage in stages:  # one grid per stage and sample image at least
        assert any(f"-{stage}-" in link for link in links), (stage, links)
    for link in links:
        assert not link.startswith("/") and link.startswith("smoke/")
        if link == "smoke/curves.png":  # the run's training curves, published with the board
            assert (board.parent / link).read_bytes() == (run_dir / "curves.png").read_bytes()
            continue
        with Image.open(board.parent / link) as img:
            assert img.width > 2 * 256 and img.height > 256  # several panels, each with its detail crop
    assert "smoke/curves.png" in links and md.index("### Training curves") < md.index("smoke/curves.png")
    assert sorted(p.name for p in (board.parent / "smoke").iterdir()) == sorted(link.split("/")[1] for link in links)


def test_regenerating_a_board_removes_pictures_it_no_longer_links(bench_run, tmp_path):
    run_dir, _ = bench_run
    board = tmp_path / "b.md"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x9-old-sr-gone.png").write_bytes(b"stale")
    ok(zoo_cli("leaderboard", run_dir, "-o", board))
    assert not (tmp_path / "b" / "x9-old-sr-gone.png").exists()
    ok(zoo_cli("leaderboard", run_dir, "-o", tmp_path / "plain.md", "--no-pictures"))
    assert not _links((tmp_path / "plain.md").read_text()) and not (tmp_path / "plain").exists()


def test_stdout_boards_have_no_pictures(bench_run):
    run_dir, _ = bench_run
    res = ok(zoo_cli("leaderboard", run_dir))
    assert "## Pictures" not in res.out and not _links(res.out)


def test_an_sr_only_run_gets_its_colour_lr_input_remade(bench_run, tmp_path):
    import json
    import shutil

    run_dir, _ = bench_run
    sr_only = tmp_path / "sr-only"
    shutil.copytree(run_dir, sr_only)
    rows = [json.loads(line) for line in (sr_only / "results.jsonl").read_text().splitlines() if line.strip()]
    (sr_only / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["stage"] == "sr"))
    for lr in sr_only.glob("samples/*/*/_truth_lr"):
        shutil.rmtree(lr)  # what a run without a colorizer stage saves
    board = tmp_path / "sr.md"
    ok(zoo_cli("leaderboard", sr_only, "-o", board))
    links = [link for link in _links(board.read_text()) if link != "sr/curves.png"]
    assert links and all("-sr-" in link for link in links)
    with Image.open(board.parent / links[0]) as img:
        assert img.width > 3 * 256  # colour LR input, the SR rows, the ground truth


def test_grids_order_models_by_the_metric_their_board_table_ranks_by():
    from zoo.boards.boardpictures import _groups

    def row(colorizer, metric, value):
        return {"stage": "pipeline", "colorizer": colorizer, "sr": "edsr", "order": "color-first", "scale": 2,
                "test_set": "Kodak24", "metric": metric, "value": value, "higher_is_better": True, "ranked": True}

    # no RANK_FIRST for pipelines: the board ranks by the first ranked metric, here auc_raw, not psnr
    rows = [row("zhang", "auc_raw", 86.0), row("zhang", "psnr", 31.3), row("unet_vae", "auc_raw", 89.7),
            row("unet_vae", "psnr", 31.2)]
    (models,) = _groups(rows).values()
    assert [m["colorizer"] for m in models] == ["unet_vae", "zhang"]
