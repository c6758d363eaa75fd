"""Conformance checks for model plugins: what ``zoo check`` runs, importable for a plugin's own tests.

In the spirit of scikit-learn's ``check_estimator``: each check builds, runs or trains the model through
the same code the benchmark uses and says pass, fail (with why) or skip (with why). A plugin repository's
test is one line with the pytest plugin zoo installs (``zoo.harness.pytest_plugin``)::

    def test_conforms(zoo_check):
        zoo_check("espcn")

or, without pytest, ``zoo.harness.conformance.assert_conforms("espcn")``.

Behaviour checks use the model's smallest preset (``tiny`` when it has one), two images per batch and
generated colourful images, so they take seconds on a CPU.
"""

from __future__ import annotations

import fnmatch
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from zoo.data.datasets import ImageFolder
from zoo.errors import ZooError, one_line
from zoo.plugins.config import config_to_dict
from zoo.plugins.contract import entry_problems
from zoo.plugins.entries import torch_meta_device
from zoo.plugins.interfaces import Colorizer, SuperResolver, count_parameters
from zoo.plugins.registry import get_registry
from zoo.store.checkpoint import load_checkpoint, save_checkpoint
from zoo.store.runs import VAL_LOG, read_log, reference_lines
from zoo.training.loop import seed_everything, stage_plan, train
from zoo.training.settings import TrainSettings

CHECKS = ("contract", "presets", "forward", "train", "save_load", "seeded", "params")
CHECK_HELP = {
    "contract": "the entry meets zoo.plugins.contract (config fields, presets, recipe stages)",
    "presets": "every preset builds the task's model class (large ones on the meta device)",
    "forward": "odd-sized inputs give the task's output shape, finite, in range",
    "train": "a few steps of every recipe stage: finite losses (held-out ones too), weights change",
    "save_load": "save -> load through zoo.store.checkpoint gives identical outputs",
    "seeded": "the same seed trains identical weights",
    "params": "the parameter count of a real build equals the meta-device count zoo list shows",
}
REAL_BUILD_LIMIT = 60_000_000  # presets larger than this are built on the meta device only
AB_LIMIT = 128.0  # |a|, |b| of any sRGB colour stay below about 110; 128 is the Lab encoding's own bound


@dataclass
class CheckResult:
    model: str
    check: str
    status: str  # "pass", "fail" or "skip"
    detail: str = ""
    seconds: float = 0.0


class _Skip(Exception):
    pass


def check_preset(entry) -> str | None:
    """The preset the behaviour checks use: ``tiny`` if there is one, else the smallest preset."""
    if "tiny" in entry.presets:
        return "tiny"
    sizes = []
    for preset in [None, *entry.presets]:
        try:
            sizes.append((entry.parameter_count(preset), preset or ""))
        except Exception:  # reported by the presets check
            continue
    return (min(sizes)[1] or None) if sizes else None


def _seeded_forward(model, x):
    torch.manual_seed(0)  # models that sample at inference (dropout, a VAE) give the same draw each time
    with torch.inference_mode():
        return model(x)


def _forward(entry, config, device):
    """``(model, input, output)`` of one forward pass on small odd-sized inputs; AssertionError naming the
    first broken rule (output shape, finite values, ab range)."""
    model = entry.build(config).to(device).eval()
    x = _inputs(entry, config).to(device)
    y = _seeded_forward(model, x)
    b, _, h, w = x.shape
    want = (b, 3, int(config.scale) * h, int(config.scale) * w) if entry.task == "sr" else (b, 2, h, w)
    if tuple(y.shape) != want:
        raise AssertionError(f"input {tuple(x.shape)} gave {tuple(y.shape)}, expected {want}")
    if not torch.isfinite(y).all():
        raise AssertionError("output has NaN or infinite values")
    if entry.task == "colorizer" and y.abs().max() > AB_LIMIT:
        raise AssertionError(f"ab output reaches {float(y.abs().max()):.1f}, outside the Lab range ±{AB_LIMIT:g}")
    return model, x, y


def fail_fast(entry, config, device: torch.device | str = "cpu") -> None:
    """The forward check of ``zoo check`` on ``config`` (the real preset), on tiny inputs: what ``zoo train``
    and the bench run before loading any data. A failure is the one line ``zoo check`` prints, as a ZooError;
    an exception of the model's own is one line too, with where it was raised."""
    try:
        _forward(entry, config, torch.device(device))
    except AssertionError as exc:
        raise ZooError(f"model '{entry.name}' fails the forward check ('zoo check {entry.name}'): {exc}") from None
    except ZooError:
        raise
    except Exception as exc:
        raise ZooError(f"model '{entry.name}' fails the forward check ('zoo check {entry.name}'): "
                       f"{one_line(exc)}") from None


def _inputs(entry, config) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if entry.task == "sr":
        return torch.rand(2, 3, 11, 13, generator=g)
    return torch.rand(2, 1, 37, 29, generator=g) * 100


def _write_images(folder: Path, side: int, count: int = 6) -> Path:
    """Colourful smooth images with some texture: random low-resolution colour fields, upsampled."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((side, side),
                                                                                      Image.BICUBIC)
        arr = np.asarray(coarse).astype(np.int16) + rng.integers(-12, 13, (side, side, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / f"generated_{i}.png")
    return folder


class _Checker:
    """The checks of one model; training runs are shared between the checks that need them."""

    def __init__(self, entry, registry, device: torch.device, work: Path, steps_per_stage: int = 2):
        self.entry, self.registry, self.device, self.work = entry, registry, device, work
        self.steps_per_stage = steps_per_stage
        self.preset = check_preset(entry)
        self.runs: dict[str, Path] = {}

    # -- the checks -----------------------------------------------------------------------------------
    def contract(self):
        problems = entry_problems(self.entry, self.entry.task)
        if problems:
            raise AssertionError("; ".join(problems))
        return f"{len(self.entry.presets)} presets"

    def presets(self):
        kind = SuperResolver if self.entry.task == "sr" else Colorizer
        built = []
        for preset in [None, *self.entry.presets]:
            label = preset or "default"
            try:
                n = self.entry.parameter_count(preset)
                if n <= REAL_BUILD_LIMIT:
                    model = self.entry.create(preset)
                    where = "real"
                else:
                    with torch_meta_device():
                        model = self.entry.create(preset)
                    where = "meta"
            except Exception as exc:
                raise AssertionError(f"preset {label} does not build: {type(exc).__name__}: {exc}") from None
            if not isinstance(model, kind):
                raise AssertionError(f"preset {label} builds a {type(model).__name__}, not a zoo.{kind.__name__}")
            built.append(f"{label} ({where})")
        return ", ".join(built)

    def forward(self):
        config = self.entry.make_config(self.preset)
        model, x, y = _forward(self.entry, config, self.device)
        single = _seeded_forward(model, x[:1])
        if not torch.allclose(single, y[:1], atol=1e-4, rtol=1e-4):
            raise AssertionError("an image's output depends on the other images of its batch")
        return f"{tuple(x.shape)} -> {tuple(y.shape)} (preset {self.preset or 'default'})"

    def train(self):
        path = self._train("a")
        log = read_log(path.parent)
        stages = [s.name for s in self.entry.recipe.stages]
        seen = {line["stage"] for line in log}
        missing = [s for s in stages if s not in seen]
        if missing:
            raise AssertionError(f"stage(s) {', '.join(missing)} ran no step")
        _refuse_non_finite(log, "loss")
        from safetensors.torch import load_file

        trained = load_file(str(path))
        initial = self._initial_state()
        changed = [k for k, v in trained.items() if k in initial and v.is_floating_point()
                   and not torch.equal(v, initial[k])]
        if not changed:
            raise AssertionError("training changed no weight")
        held_out = read_log(path.parent, VAL_LOG)
        _refuse_non_finite(held_out, "held-out loss")
        references = reference_lines(held_out)
        _refuse_non_finite(references, "reference loss")
        # a reference is read beside the validation loss of the same name: one without it compares nothing
        unmatched = sorted({k for r in references for k in r} - {k for r in held_out for k in r})
        if unmatched:
            raise AssertionError(f"reference_losses names {', '.join(unmatched)}, which validation_losses does not")
        validated = (f"; {len(held_out)} validations" + (" with references" if references else "")
                     if held_out else "; no validation losses")
        return (f"{len(log)} steps over {', '.join(stages)}; {len(changed)} of {len(trained)} tensors "
                f"changed{validated}")

    def save_load(self):
        config = self.entry.make_config(self.preset)
        torch.manual_seed(3)
        model = self.entry.build(config).to(self.device)
        if not any(True for _ in model.state_dict()):
            raise _Skip("the model holds no tensors")
        x = _inputs(self.entry, config).to(self.device)
        model.train()
        with torch.no_grad():  # moves normalisation statistics away from their initial values
            model(x)
        model.eval()
        path = save_checkpoint(self.work / "save_load" / "model.safetensors", model,
                               {"model": self.entry.name, "config": config_to_dict(config)})
        loaded = load_checkpoint(path, self.registry, self.device).model
        a, b = _seeded_forward(model, x), _seeded_forward(loaded, x)
        if not torch.equal(a, b):
            raise AssertionError(f"outputs differ after save -> load (max |diff| {float((a - b).abs().max()):.3g})")
        return "identical outputs"

    def seeded(self):
        from safetensors.torch import load_file

        a, b = load_file(str(self._train("a"))), load_file(str(self._train("b")))
        differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        if differ or set(a) != set(b):
            # run "a" validates every step and "b" does not: validation_losses must leave training alone
            raise AssertionError(f"two runs with seed 0 (one of them validating) differ in {len(differ)} tensors "
                                 f"(first: {differ[:1]})")
        return f"{len(a)} tensors identical"

    def params(self):
        shown = self.entry.parameter_count()
        if shown > REAL_BUILD_LIMIT:
            raise _Skip(f"{shown:,} parameters: too large to build here")
        real = count_parameters(self.entry.create())
        if real != shown:
            raise AssertionError(f"a real build has {real:,} parameters, zoo list shows {shown:,}")
        return f"{shown:,}"

    # -- shared training -------------------------------------------------------------------------------
    def _steps(self) -> int:
        stages = tuple(self.entry.recipe.stages)
        for total in range(self.steps_per_stage * len(stages), 401):
            plan = stage_plan(stages, total)
            if len(plan) == len(stages) and all(end - first >= self.steps_per_stage for _, first, end in plan):
                return total
        raise AssertionError("the stage fractions leave a stage without steps in 400 steps")

    def _train_config(self):
        return self.entry.make_config(self.preset, {"batch_size": 2})

    def _initial_state(self) -> dict[str, torch.Tensor]:
        seed_everything(0)  # as the training loop does before it builds the model
        return {k: v.detach().clone() for k, v in self.entry.build(self._train_config()).state_dict().items()}

    def _train(self, tag: str) -> Path:
        if tag in self.runs:
            return self.runs[tag]

        if self.entry.recipe is None:
            raise _Skip("nothing to train (a fixed model)")
        config = self._train_config()
        scale = int(getattr(config, "scale", 2))
        data_scale = 1 if self.entry.task == "sr" else 2
        side = max(64, 2 * int(config.patch_size) * (scale if self.entry.task == "sr" else data_scale) + 8)
        data = ImageFolder(_write_images(self.work / f"data-{side}", side))
        settings = TrainSettings(steps=self._steps(), data_scale=data_scale, checkpoint_every=10_000, workers=0,
                                 val=data if tag == "a" else None, val_every=1)
        result = train(self.entry, config, data, settings, out_dir=self.work / f"train-{tag}", device=self.device,
                       progress=False)
        self.runs[tag] = result.checkpoint
        return result.checkpoint


def _refuse_non_finite(lines: list[dict], what: str) -> None:
    bad = [(line["step"], k, v) for line in lines for k, v in line.items()
           if k not in ("step", "stage") and isinstance(v, (int, float)) and not math.isfinite(v)]
    if bad:
        raise AssertionError(f"non-finite {what} {bad[0][1]}={bad[0][2]} at step {bad[0][0]}")


def check_model(entry, *, registry=None, device: str | torch.device = "cpu", checks: Iterable[str] = CHECKS,
                work_dir: Path | None = None, on_result: Callable[[CheckResult], None] | None = None
                ) -> list[CheckResult]:
    """Run ``checks`` on one registered model (a :class:`zoo.ModelEntry`); never raises for a failing model."""
    import warnings


    registry = registry or get_registry()
    results = []
    with tempfile.TemporaryDirectory(prefix="zoo-check-", dir=work_dir) as tmp:
        checker = _Checker(entry, registry, torch.device(device), Path(tmp))
        for name in checks:
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a missing weight file is a note here, not a failure
                    detail = getattr(checker, name)()
                status = "pass"
            except _Skip as exc:
                status, detail = "skip", str(exc)
            except AssertionError as exc:
                status, detail = "fail", str(exc)
            except Exception as exc:  # the model's own error: report where it came from
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                status = "fail"
                detail = f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
            result = CheckResult(entry.name, name, status, str(detail or ""), round(time.perf_counter() - t0, 2))
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def check_models(patterns: Iterable[str] = ("*",), *, registry=None, device: str | torch.device = "cpu",
                 checks: Iterable[str] = CHECKS, on_result=None) -> list[CheckResult]:
    """Check every registered model matching the names or globs, and report the ones withdrawn for
    breaking the contract as a failed ``contract`` check."""

    registry = registry or get_registry()
    patterns = list(patterns) or ["*"]
    checks = list(checks)
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ZooError(f"unknown check '{unknown[0]}' (checks: {', '.join(CHECKS)})")
    results: list[CheckResult] = []
    invalid = registry.invalid
    for pattern in patterns:
        withdrawn = [n for n in sorted(invalid) if fnmatch.fnmatchcase(n, pattern)]
        for name in withdrawn:
            result = CheckResult(name, "contract", "fail", invalid[name])
            results.append(result)
            if on_result:
                on_result(result)
        if any(ch in pattern for ch in "*?["):
            entries = registry.entries(pattern)
        elif withdrawn:
            entries = []
        else:
            entries = [registry.get(pattern)]
        if not entries and not withdrawn:
            raise ZooError(f"no model matches '{pattern}' (see 'zoo list')")
        for entry in entries:
            results += check_model(entry, registry=registry, device=device, checks=checks, on_result=on_result)
    return results


def format_results(results: list[CheckResult], noun: str = "models") -> str:
    """A table with one row per model (or metric) and one column per check, then the reason for each failure
    or skip."""
    from tabulate import tabulate

    models = list(dict.fromkeys(r.model for r in results))
    checks = list(dict.fromkeys(r.check for r in results))
    cell = {(r.model, r.check): r for r in results}
    mark = {"pass": "pass", "fail": "FAIL", "skip": "skip"}
    table = [[m] + [mark[cell[(m, c)].status] if (m, c) in cell else "-" for c in checks] for m in models]
    lines = [tabulate(table, headers=["model", *checks])]
    notes = [r for r in results if r.status != "pass"]
    if notes:
        lines.append("")
        lines += [f"{r.model} {r.check}: {'FAIL' if r.status == 'fail' else 'skip'}: {r.detail}" for r in notes]
    failed = sum(r.status == "fail" for r in results)
    lines.append("")
    lines.append(f"{len(models)} {noun}, {len(results)} checks: {failed} failed, "
                 f"{sum(r.status == 'skip' for r in results)} skipped")
    return "\n".join(lines)


def results_json(results: list[CheckResult]) -> dict:
    return {"checks": {c: CHECK_HELP[c] for c in CHECKS}, "results": [asdict(r) for r in results],
            "failed": sum(r.status == "fail" for r in results)}


def assert_conforms(*patterns: str, registry=None, device: str = "cpu", checks: Iterable[str] = CHECKS) -> None:
    """Raise AssertionError with the table when any check of the matching models fails."""
    results = check_models(patterns or ("*",), registry=registry, device=device, checks=checks)
    if any(r.status == "fail" for r in results):
        raise AssertionError("zoo check failed:\n" + format_results(results))
