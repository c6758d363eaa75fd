"""The plugin contract: checked at registration, hook names checked, metric plugins, SystemExit contained."""

from __future__ import annotations

import dataclasses
import types
import warnings
from dataclasses import dataclass

import pytest
import torch

import zoo
from zoo.data.datasets import resolve_dataset
from zoo.errors import PluginConflictError, PluginWarning, ZooError
from zoo.harness.evaluate import evaluate, load_model

from helpers import tiny_sr_parts

GoodConfig, Net, NetRecipe = tiny_sr_parts()


def entry(name="good", **changes):
    base = zoo.ModelEntry(name=name, build=Net, config=GoodConfig, summary="a test model", recipe=NetRecipe,
                          presets={"tiny": {"width": 2}})
    return dataclasses.replace(base, **changes)


def plugin(*entries, hook="register_sr_models", module="test_plugin"):
    mod = types.ModuleType(module)

    def register_fn(register):
        for e in entries:
            register(e)

    register_fn.__module__ = module
    setattr(mod, hook, zoo.hookimpl(register_fn))
    return mod


def load(*plugins):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = zoo.load_registry(entry_points=False, plugins=[(p.__name__, p) for p in plugins])
    return reg, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


@dataclass
class NoTrainFields:
    scale: int = 2


@dataclass
class NoScale(zoo.TrainConfig):
    width: int = 4


@dataclass
class NoDefault(zoo.SRConfig, zoo.TrainConfig):
    width: int = dataclasses.field(default_factory=lambda: (_ for _ in ()).throw(TypeError("no default")))


@dataclass
class StringBatch(zoo.SRConfig):
    batch_size: str = "16"
    patch_size: int = 8


class NotARecipe:
    pass


class NoStages(NetRecipe):
    stages = ()


class SameStageTwice(NetRecipe):
    stages = (zoo.Stage("a", 0.5), zoo.Stage("a", 0.5))


@pytest.mark.parametrize("changes, field", [
    ({"config": NoTrainFields}, "batch_size"),
    ({"config": NoScale}, "scale"),
    ({"config": object}, "dataclass"),
    ({"config": NoDefault}, "no arguments"),
    ({"config": StringBatch}, "'batch_size' must be declared as int"),
    ({"presets": {"tiny": {"widht": 2}}}, "did you mean 'width'"),
    ({"presets": {"tiny": {"width": "big"}}}, "'width' must be int"),
    ({"presets": {"tiny": {"width": 2.5}}}, "'width' must be int"),
    ({"recipe": NotARecipe}, "zoo.Recipe subclass"),
    ({"recipe": NoStages}, "non-empty tuple of zoo.Stage"),
    ({"recipe": SameStageTwice}, "same name"),
    ({"summary": ""}, "summary"),
])
def test_a_contract_violation_withdraws_that_model_with_one_line(changes, field):
    reg, messages = load(plugin(entry("bad", **changes), entry("fine")))
    [message] = [m for m in messages if "'bad'" in m]
    assert "distribution 'test_plugin'" in message and field in message and "\n" not in message
    with pytest.raises(ZooError, match="breaks the plugin contract"):
        reg.get("bad")
    assert reg.get("fine").create("tiny")(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)
    assert "bad" in reg.invalid and "bad" not in reg.names()


def test_fixed_models_need_no_training_fields():
    @dataclass
    class FixedConfig(zoo.SRConfig):
        pass

    reg, messages = load(plugin(entry("fixed", config=FixedConfig, recipe=None, presets={})))
    assert not messages and not reg.get("fixed").trainable


def test_misspelled_or_unmarked_hooks_are_reported():
    mod = types.ModuleType("typo_plugin")

    def register_sr_model(register):  # a typo of register_sr_models, marked
        register(entry("never"))

    def register_colorizers(register):  # the right name, but not marked
        pass

    for fn in (register_sr_model, register_colorizers):
        fn.__module__ = "typo_plugin"
    mod.register_sr_model = zoo.hookimpl(register_sr_model)
    mod.register_colorizers = register_colorizers
    reg, messages = load(mod)
    typo = [m for m in messages if "'register_sr_model'" in m]
    assert typo and "matches no hook" in typo[0] and "did you mean 'register_sr_models'" in typo[0]
    unmarked = [m for m in messages if "'register_colorizers'" in m]
    assert unmarked and "not marked @zoo.hookimpl" in unmarked[0]
    assert "never" not in reg.names()
    info = next(p for p in reg.plugins if p.name == "typo_plugin")
    assert len(info.errors) == 2


def test_sys_exit_in_a_hook_is_a_plugin_failure_not_the_end():
    mod = types.ModuleType("exiting")

    def register_sr_models(register):
        raise SystemExit(3)

    mod.register_sr_models = zoo.hookimpl(register_sr_models)
    reg, messages = load(mod, plugin(entry("survivor"), module="other"))
    assert any("SystemExit" in m and "exiting" in m for m in messages)
    assert "survivor" in reg.names()


# -- metric plugins -------------------------------------------------------------------------------------
class MaxError(zoo.Metric):
    def __init__(self, shave=0):
        self.info = zoo.MetricInfo("max_error", higher_is_better=False, unit="levels",
                                   convention=f"RGB 0-255, shave={shave}")
        self.shave = shave
        self.reset()

    def reset(self):
        self.values = []

    def update(self, pred, target):
        d = (pred - target).abs() * 255
        if self.shave:
            d = d[..., self.shave:-self.shave, self.shave:-self.shave]
        self.values += d.amax(dim=(1, 2, 3)).tolist()

    def compute(self):
        return zoo.MetricResult(self.info, sum(self.values) / len(self.values), n=len(self.values))


def test_a_plugin_metric_is_evaluated_with_its_metadata():
    metric = zoo.MetricEntry(name="max_error", build=lambda shave=0, **params: MaxError(shave),
                             higher_is_better=False, unit="levels", summary="largest error")
    reg, messages = load(plugin(metric, hook="register_metrics"))
    assert not messages
    assert "max_error" in reg.metric_names() and "psnr" in reg.metric_names()  # the core ones come too
    assert reg.metric("max_error").distribution == "test_plugin"
    sr = load_model("bicubic", "sr", scale=2, device=torch.device("cpu"), registry=None)
    report = evaluate(dataset=resolve_dataset("samples:test"), scale=2, device=torch.device("cpu"), sr=sr,
                      metrics=["psnr", "max_error"], registry=reg)
    by_name = {r.info.name: r for r in report.results}
    assert by_name["max_error"].available and 0 < by_name["max_error"].value <= 255
    assert by_name["max_error"].info.convention == "RGB 0-255, shave=2"  # the evaluation's shave reached it
    row = by_name["max_error"].to_dict()
    assert row["higher_is_better"] is False and row["unit"] == "levels"


def test_metric_names_follow_the_duplicate_rule_and_did_you_mean():
    metric = zoo.MetricEntry(name="psnr", build=lambda **p: None, higher_is_better=True, summary="shadow")
    reg, _ = load(plugin(metric, hook="register_metrics"))
    with pytest.raises(PluginConflictError, match="metric name 'psnr'.*'zoo' and 'test_plugin'"):
        reg.metric("psnr")
    with pytest.raises(ZooError, match="did you mean 'ssim'"):
        reg.metric("sim")
    bad = zoo.MetricEntry(name="broken", build="not callable", higher_is_better=True, summary="x")
    reg, messages = load(plugin(bad, hook="register_metrics"))
    assert any("'broken'" in m and "build must be callable" in m for m in messages)
