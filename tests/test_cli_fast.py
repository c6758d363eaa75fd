"""The CLI without torch: `import zoo`, `zoo --help`, `zoo list` from its cache, shell completion.

The wall time of these is measured by benchmark/scripts/cli_startup.py, not here; these tests check the
cause of the speed: torch is not imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import make_dist, run_zoo

# Runs the CLI in-process, then reports on stderr whether torch was imported (exit codes ignored).
PROBE = """
import sys
try:
    from zoo.cli import main
    main(sys.argv[1:])
except SystemExit:
    pass
print("TORCH-IMPORTED" if "torch" in sys.modules else "TORCH-NOT-IMPORTED", file=sys.stderr)
"""


def probe(*args, env=None, pythonpath=()):
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), full.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full,
                          timeout=300)
    return proc, "TORCH-IMPORTED" in proc.stderr


def test_import_zoo_and_the_cli_do_not_import_torch():
    code = ("import sys, zoo, zoo.cli; zoo.ZooError, zoo.MetricInfo, zoo.hookimpl, zoo.ModelEntry; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    proc, torch_seen = probe("--help")
    assert "Commands:" in proc.stdout and "push" in proc.stdout and not torch_seen
    proc, torch_seen = probe("bench", "--help")
    assert "--suite" in proc.stdout and not torch_seen


def test_zoo_list_reads_its_cache_without_torch(tmp_path):
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    # (a pattern, so only two models are counted: counting all takes seconds)
    first, torch_first = probe("list", "--json", "edsr*", env=env)
    again, torch_again = probe("list", "--json", "edsr*", env=env)
    assert torch_first and not torch_again  # the first run imports the plugins and writes the cache
    assert json.loads(first.stdout) == json.loads(again.stdout)
    models = {m["name"]: m for m in json.loads(again.stdout)["models"]}
    assert models["edsr"]["params"] == 1369859 and models["edsr"]["presets"] == ["cpu", "paper",
                                                                                   "super_colorization", "tiny"]
    # --refresh imports the plugins again
    _, torch_refresh = probe("list", "--refresh", "edsr", env=env)
    assert torch_refresh


def test_the_listing_follows_plugin_changes(tmp_path):
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    site = tmp_path / "site"
    source = """
        import zoo
        from dataclasses import dataclass

        @dataclass
        class Cfg:
            scale: int = 2

        @zoo.hookimpl
        def register_sr_models(register):
            register(zoo.ModelEntry(name="{name}", build=lambda c: None, config=Cfg, summary="a test model"))
    """
    make_dist(site, "zoo-listed", "listed", source.format(name="listed_a"))
    names = lambda proc: [m["name"] for m in json.loads(proc.stdout)["models"]]  # noqa: E731
    assert names(run_zoo("list", "--json", "listed*", pythonpath=[site], env=env, check=True)) == ["listed_a"]
    make_dist(site, "zoo-listed", "listed", source.format(name="listed_b_longer"))  # the file changes
    after = names(run_zoo("list", "--json", "listed*", pythonpath=[site], env=env, check=True))
    assert after == ["listed_b_longer"]
    only = run_zoo("list", "--json", pythonpath=[site], env={**env, "ZOO_PLUGINS": "zoo-listed"}, check=True)
    assert names(only) == ["listed_b_longer"]
    # without the plugin on the path, it is gone
    assert names(run_zoo("list", "--json", "listed*", env=env, check=True)) == []


def test_warnings_and_conflicts_are_shown_from_the_cache_too(tmp_path):
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    site = tmp_path / "site"
    make_dist(site, "zoo-broken", "broken_mod", "raise ImportError('no such thing')\n")
    for _ in range(2):
        proc = run_zoo("list", "gray", pythonpath=[site], env=env)
        assert proc.returncode == 0 and "zoo-broken" in proc.stderr and "no such thing" in proc.stderr


def complete(words: str, env: dict):
    """What bash completion offers for the command line ``words`` (the last word being completed)."""
    parts = words.split(" ")
    proc, torch_seen = probe(env={**env, "_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": words,
                                  "COMP_CWORD": str(len(parts) - 1)})
    offered = [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line.startswith("plain,")]
    return offered, torch_seen


def test_completion_offers_names_without_torch(tmp_path):
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    run_zoo("list", "no-such-model", env=env, check=True)  # writes the cache (a first completion would too)
    cases = {
        "zoo train --model ed": ["edsr", "edsr_dqe"],
        "zoo train --model edsr --preset ": ["cpu", "paper", "super_colorization", "tiny"],
        "zoo train --model unet_vae --preset ": ["cpu", "k3_depth4", "paper", "tiny"],
        "zoo bench --sr bicubic,sr": ["bicubic,srgan"],
        "zoo bench --colorizer p": ["pix2pix"],
        "zoo bench --suite s": ["smoke", "sr-classic"],
        "zoo eval --metrics psnr,ssim_": ["psnr,ssim_rgb"],
        "zoo eval --sr ed": ["edsr", "edsr_dqe"],
        "zoo list g": ["gray"],
    }
    for words, expected in cases.items():
        offered, torch_seen = complete(words, env)
        assert offered == expected, words
        assert not torch_seen, words
    # something that looks like a path is left to the shell's file completion
    proc, _ = probe(env={**env, "_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": "zoo run --sr ./ru",
                         "COMP_CWORD": "3"})
    assert proc.stdout.startswith("file,")


def test_completion_scripts_the_readme_names():
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        proc = subprocess.run([sys.executable, "-m", "zoo"], capture_output=True, text=True,
                              env={**os.environ, "_ZOO_COMPLETE": f"{shell}_source"})
        assert f"_ZOO_COMPLETE={shell}_complete" in proc.stdout and marker in proc.stdout, shell
