"""The plugin registry: hooks, real entry points, broken plugins, conflicts, filters, baselines."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import torch

import zoo
from zoo.errors import PluginConflictError, PluginWarning, UnknownModelError, ZooError

from helpers import REPO, make_dist, run_zoo, tiny_sr_parts

_Cfg, _Tiny, _ = tiny_sr_parts()  # the models registered below have no recipe: nothing to train


def _plugin(*names, hook="register_sr_models"):
    """A plugin object defined inside the test: nothing installed."""

    def register_fn(register):
        for n in names:
            register(zoo.ModelEntry(name=n, build=_Tiny, config=_Cfg, summary=f"test model {n}",
                                    presets={"tiny": {"width": 2}}))

    plugin = types.ModuleType(f"plugin_{'_'.join(names)}")
    setattr(plugin, hook, zoo.hookimpl(register_fn))
    return plugin


def test_in_test_plugin_registers_through_hook(registry_factory):
    reg = registry_factory(_plugin("mysr"), entry_points=False)
    entry = reg.get("mysr")
    assert entry.task == "sr" and entry.distribution == "plugin_mysr"
    model = entry.create("tiny", scale=3)
    assert model.scale == 3
    assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 15, 21)
    # Parameter count on the meta device equals the real count.
    assert entry.parameter_count() == sum(p.numel() for p in entry.create().parameters()) == 12 * 3 * 9 + 12


def test_builtin_baselines_come_from_entry_points(registry_factory):
    reg = registry_factory()
    assert reg.get("gray").task == "colorizer" and reg.get("gray").distribution == "zoo"
    assert reg.get("bicubic").task == "sr" and reg.get("bicubic").distribution == "zoo"
    assert {p.name for p in reg.plugins} >= {"zoo_colorizers", "zoo_sr"}


def test_unknown_name_suggests_close_matches(registry_factory):
    reg = registry_factory()
    with pytest.raises(UnknownModelError, match="did you mean 'bicubic'"):
        reg.get("bicubc")
    with pytest.raises(UnknownModelError, match="'gray' is a colorizer"):
        reg.get("gray", task="sr")


def test_glob_selection(registry_factory):
    reg = registry_factory(_plugin("edsr_a", "edsr_b", "other"), entry_points=False)
    assert [e.name for e in reg.select(["edsr*"], "sr")] == ["edsr_a", "edsr_b"]
    assert [e.name for e in reg.entries("*_b")] == ["edsr_b"]
    with pytest.raises(ZooError, match="no sr model matches"):
        reg.select(["nothing*"], "sr")


def test_plugin_raising_in_hook_is_reported_and_others_work(registry_factory):
    class Broken:
        __name__ = "broken"

        @zoo.hookimpl
        def register_sr_models(self, register):
            raise RuntimeError("boom in hook")

    with pytest.warns(PluginWarning, match=r"plugin 'broken'.*RuntimeError: boom in hook"):
        reg = registry_factory(Broken(), _plugin("fine"), entry_points=False)
    assert "fine" in reg
    assert any("boom in hook" in e for p in reg.plugins for e in p.errors)


def test_duplicate_name_is_an_error_naming_both(registry_factory):
    reg = registry_factory(_plugin("twin"), _plugin("twin", "solo"), entry_points=False)
    assert "solo" in reg and "twin" not in reg
    with pytest.raises(PluginConflictError) as exc:
        reg.get("twin")
    assert "plugin_twin" in str(exc.value) and "plugin_twin_solo" in str(exc.value)


def test_override_types_and_errors(registry_factory):
    reg = registry_factory(_plugin("m"), entry_points=False)
    cfg = reg.get("m").make_config("tiny", ["scale=4"])
    assert cfg == _Cfg(scale=4, width=2)
    with pytest.raises(ZooError, match="did you mean 'width'"):
        reg.get("m").make_config(overrides=["widht=3"])
    with pytest.raises(ZooError, match="'scale' must be int"):
        reg.get("m").make_config(overrides={"scale": "two"})
    with pytest.raises(ZooError, match="no preset 'huge'"):
        reg.get("m").make_config("huge")


# -- real entry points, in a fresh interpreter --------------------------------------------------------

BROKEN_IMPORT = """
raise ImportError("this plugin needs a package that is not installed")
"""

BROKEN_HOOK = """
import zoo

@zoo.hookimpl
def register_colorizers(register):
    raise ValueError("hook exploded")
"""

DUPLICATE = """
import zoo
from dataclasses import dataclass
from zoo_sr.bicubic import ENTRY

@zoo.hookimpl
def register_sr_models(register):
    register(zoo.ModelEntry(name="{name}", build=ENTRY.build, config=ENTRY.config, summary="dup"))
"""


def _names(proc) -> list[str]:
    return [m["name"] for m in json.loads(proc.stdout)["models"]]


def test_example_plugin_installed_with_pip_appears_in_zoo_list(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target), str(REPO / "plugins" / "example_plugin")], check=True,
                   capture_output=True)
    proc = run_zoo("list", "--json", pythonpath=[target], check=True)
    models = {m["name"]: m for m in json.loads(proc.stdout)["models"]}
    assert models["espcn"]["distribution"] == "zoo-example"
    assert models["espcn"]["task"] == "sr" and models["espcn"]["params"] > 0
    assert {"gray", "bicubic"} <= set(models)
    assert models["gray"]["distribution"] == "zoo"


def test_broken_plugins_warn_and_the_rest_is_listed(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-broken-import", "broken_import", BROKEN_IMPORT)
    make_dist(site, "zoo-broken-hook", "broken_hook", BROKEN_HOOK)
    proc = run_zoo("list", "--json", pythonpath=[site])
    assert proc.returncode == 0, proc.stderr
    assert {"gray", "bicubic"} <= set(_names(proc))
    assert "zoo-broken-import" in proc.stderr and "ImportError" in proc.stderr
    assert "zoo-broken-hook" in proc.stderr and "hook exploded" in proc.stderr
    assert "Traceback" not in proc.stderr
    plugins = json.loads(run_zoo("plugins", "--json", pythonpath=[site]).stdout)["plugins"]
    errors = {p["distribution"]: p["errors"] for p in plugins}
    assert errors["zoo-broken-import"] and errors["zoo-broken-hook"] and not errors["zoo"]


def test_duplicate_names_across_distributions(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-dup-a", "dup_a", DUPLICATE.format(name="clash"))
    make_dist(site, "zoo-dup-b", "dup_b", DUPLICATE.format(name="clash"))
    proc = run_zoo("list", "--json", pythonpath=[site])
    assert proc.returncode == 1
    assert "clash" not in _names(proc) and "bicubic" in _names(proc)
    assert "'zoo-dup-a' and 'zoo-dup-b'" in proc.stderr
    # Shadowing a built-in is the same error, not an override.
    make_dist(site, "zoo-shadow", "shadow", DUPLICATE.format(name="bicubic"))
    proc = run_zoo("list", "--json", pythonpath=[site])
    assert "bicubic" not in _names(proc) and "'zoo' and 'zoo-shadow'" in proc.stderr


def test_zoo_plugins_and_zoo_disable_plugins(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "zoo-dup-a", "dup_a", DUPLICATE.format(name="extra_a"))
    make_dist(site, "zoo-dup-b", "dup_b", DUPLICATE.format(name="extra_b"))
    only = run_zoo("list", "--json", pythonpath=[site], env={"ZOO_PLUGINS": "zoo_dup_a"}, check=True)
    assert _names(only) == ["extra_a"]
    without = run_zoo("list", "--json", pythonpath=[site], env={"ZOO_DISABLE_PLUGINS": "zoo-dup-a"}, check=True)
    assert "extra_a" not in _names(without) and {"extra_b", "bicubic", "gray"} <= set(_names(without))


def test_cli_user_errors_are_one_line_exit_2():
    proc = run_zoo("list", "--task", "video")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = run_zoo("nonsense")
    assert proc.returncode == 2 and "zoo: error:" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_list_glob_and_task_filter():
    proc = run_zoo("list", "--json", "--task", "sr", "bic*", check=True)
    assert _names(proc) == ["bicubic"]
    assert "bicubic" in run_zoo("list", check=True).stdout


# -- the baselines ---------------------------------------------------------------------------------------

def test_gray_predicts_zero_ab(registry_factory):
    model = registry_factory().get("gray").create()
    l = torch.rand(2, 1, 7, 9) * 100
    ab = model(l)
    assert ab.shape == (2, 2, 7, 9) and torch.count_nonzero(ab) == 0
