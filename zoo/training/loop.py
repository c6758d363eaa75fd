"""The one training loop every model shares; what differs per model lives in its :class:`~zoo.plugins.recipe.Recipe`.

The loop owns: data (streamed patches), device placement, seeding, mixed precision, the ``channels_last``
memory format (see :func:`default_channels_last`), the progress bar, periodic atomic checkpoints and
resumption. What a run folder holds: :mod:`zoo.store.runs`.

Resuming: the data stream is a pure function of (seed, step) and the RNG state is checkpointed, so a run
interrupted at any checkpoint and continued ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.data import loader
from zoo.data.color import split_lab
from zoo.data.datasets import resolve_dataset
from zoo.errors import ZooError
from zoo.plugins.config import config_to_dict
from zoo.plugins.interfaces import count_parameters
from zoo.plugins.recipe import NonFiniteLossError, Stage, TrainContext, stage_plan
from zoo.runtime import devicefacts, rngstate
from zoo.runtime.constants import constant
from zoo.runtime.determinism import configure as configure_determinism
from zoo.runtime.devicefacts import PRECISIONS
from zoo.runtime.provenance import environment
from zoo.store import checkpoint as ckpt
from zoo.store import runs
from zoo.store.checkpoint import completed_steps  # part of this module's API (__all__)
from zoo.store.files import claim_train_dir, locked
from zoo.store.runs import read_log  # likewise
from zoo.training import validation
from zoo.training.settings import TrainSettings, run_key
from zoo.training.steplog import StepLog

# loader.make_train_loader and ckpt.write_checkpoint are looked up at each call, through their modules: tests
# wrap them.
PREPARE_BATCHES = 8  # batches shown to Recipe.prepare (e.g. to estimate a colour prior)


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    seconds: float  # wall time of the steps run in this call
    resumed_from: int
    notes: list[str] = field(default_factory=list)
    trained: bool = True  # False when the run was already complete


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(precision: str, device: torch.device, facts: devicefacts.DeviceFacts | None = None) -> str:
    """What a requested precision means on ``device``: "fp32", "bf16" or "fp16" (rules:
    :func:`zoo.runtime.devicefacts.choose_precision`, from the compute capability of ``device`` itself)."""
    if facts is None:
        facts = devicefacts.gather(device) if device.type == "cuda" else devicefacts.DeviceFacts(device.type)
    return devicefacts.choose_precision(precision, facts)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, task: str, channels_last: bool):
    # uint8 batches (a quarter of the bytes to copy) become [0, 1] on the device; dividing by a device tensor,
    # not a Python number, keeps a true division (CUDA multiplies by the reciprocal of a scalar divisor)
    out = {k: _unit(v.to(device, non_blocking=True)) for k, v in batch.items()}
    if task == "colorizer":
        out["l"], out["ab"] = split_lab(out["rgb"])
    if channels_last:
        out = {k: v.contiguous(memory_format=torch.channels_last) for k, v in out.items()}
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        return x.float()
    return x.float().div_(constant(255.0, x.device))


def default_channels_last(device: torch.device) -> bool:
    """Whether the loop trains in the ``channels_last`` memory format on ``device`` unless told otherwise.

    On CUDA it is the layout tensor cores want. On a CPU it is oneDNN's native layout: it spares the
    reorders around every convolution, and its backward pass is the faster one. Measured on this 2-core
    machine (float32, best of 8 steps, tiny and paper presets of every built-in model), channels_last was
    1.00x to 1.40x as fast as the default layout, and never slower.

    The layout is more than rounding: dropout draws its mask in memory order, so a run in the other layout
    draws other masks. An explicit ``channels_last`` is therefore part of the run key (the default is not,
    like ``precision="auto"``).
    """
    return device.type in ("cuda", "cpu")


def default_workers(device: torch.device | None = None) -> int:
    """Loader processes the loop uses unless told otherwise (:func:`zoo.runtime.devicefacts.loader_plan`: none on 2
    CPU cores, the cores per GPU on CUDA). Batches do not depend on the worker count."""
    return devicefacts.loader_plan(devicefacts.gather(device or torch.device("cpu"))).workers


def train(entry, config, dataset, settings: TrainSettings | None = None, *, out_dir: Path, device: torch.device,
          progress: bool = True, force: bool = False, extra_meta: dict[str, Any] | None = None,
          **options) -> TrainResult:
    """Train ``entry`` (a trainable ModelEntry) with ``config`` on ``dataset`` as ``settings`` say (or, from
    Python, as keyword ``options`` say: the fields of :class:`~zoo.training.settings.TrainSettings`).

    Continues a run found in ``out_dir``; a folder holding another run or foreign files is refused unless
    ``force`` (:func:`zoo.store.files.claim_train_dir`). One process at a time trains in ``out_dir``: another
    one waits for it, then finds the run finished. ``extra_meta`` goes into ``model.json``.
    """
    if settings is None:
        settings = TrainSettings.from_options(**options)
    elif options:
        raise TypeError(f"train() takes settings or keyword options, not both ({', '.join(sorted(options))})")
    if entry.recipe is None:
        raise ZooError(f"model '{entry.name}' has nothing to train (it is a fixed baseline)")
    out_dir = Path(out_dir)
    val_data = None if settings.val is None else resolve_dataset(settings.val)
    key = run_key(entry, config, dataset.fingerprint(), settings, None if val_data is None else val_data.fingerprint())
    resolve_precision(settings.precision, device)  # an impossible precision fails before any file is touched
    finished = _finished_result(out_dir, key, settings.steps)
    if finished is not None:  # nothing to build or load: a warm benchmark only needs the file
        return finished
    claim_train_dir(out_dir, key, force)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"cannot create {out_dir}: {exc.strerror or exc}") from None

    def waiting():
        print(f"zoo: {entry.name}: another process is training this run in {out_dir}; waiting for it",
              file=sys.stderr, flush=True)

    with locked(out_dir / ".lock", on_wait=waiting):
        finished = _finished_result(out_dir, key, settings.steps)  # the process we waited for may have finished
        if finished is not None:
            return finished
        return _TrainRun(entry, config, dataset, out_dir, device, key, settings, val_data, progress,
                         extra_meta or {}).run()


@dataclass
class Setup:
    """A model and its recipe ready for their first step (:func:`setup`)."""

    model: torch.nn.Module
    recipe: Any
    ctx: TrainContext
    plan: list  # (stage, first step, end step), stage_plan's
    precision: str  # resolved: fp32, bf16 or fp16
    channels_last: bool
    parameters: int


def setup(entry, config, device: torch.device, settings: TrainSettings, facts=None) -> Setup:
    """Check the config, then build the model and its recipe on ``device``, seeded, in the run's precision and
    memory format; the context's notes say what the run does differently from a plain float32 one. The loop
    and the dry run both start here, so the estimate measures what the loop runs."""
    entry.recipe.check_config(config)
    facts = facts or devicefacts.gather(device)
    precision = resolve_precision(settings.precision, device, facts)
    channels_last = default_channels_last(device) if settings.channels_last is None else bool(settings.channels_last)
    configure_determinism(settings.deterministic, device)
    seed_everything(settings.seed)
    model = entry.build(config).to(device)
    parameters = count_parameters(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    read_every = devicefacts.read_every(facts) if settings.read_every is None else int(settings.read_every)
    ctx = TrainContext(device=device, total_steps=settings.steps, precision=precision, read_every=read_every)
    if precision != "fp32":
        ctx.note(f"trained with {precision} autocast (weights and optimiser in float32)")
    emulated = devicefacts.precision_warning(precision, facts)
    if emulated:
        ctx.note(emulated)
    if settings.deterministic:
        ctx.note("trained with --deterministic (deterministic algorithms, fixed cuDNN choices)")
    recipe = entry.recipe(model, config, ctx)
    recipe.aux.to(device)
    if channels_last:
        recipe.aux.to(memory_format=torch.channels_last)
    return Setup(model, recipe, ctx, stage_plan(tuple(recipe.stages), settings.steps), precision, channels_last,
                 parameters)


def loader_scale(task: str, config, settings: TrainSettings) -> int:
    """What the loader downscales by: an SR model's own scale, a colorizer the benchmark's."""
    return int(getattr(config, "scale", 1)) if task == "sr" else int(settings.data_scale)


def share_cores(device: torch.device, facts, workers: int | None):
    """The loader plan for ``device`` (:func:`zoo.runtime.devicefacts.loader_plan`). On a CPU, loader processes
    and intra-op threads share the cores, and oversubscribing them slows small convolutions 5-10x: the thread
    count drops to what the workers leave (never raised above what the caller set)."""
    loading = devicefacts.loader_plan(facts, workers)
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), facts.cpus - loading.workers)))
    return loading


def _finished_result(out_dir: Path, key: str, steps: int) -> TrainResult | None:
    ckpt_path = out_dir / "model.safetensors"
    notes = ckpt.finished_notes(ckpt_path, key, steps)
    return None if notes is None else TrainResult(ckpt_path, steps, 0.0, steps, notes, trained=False)


@dataclass
class _TrainRun:
    """One call of :func:`train` inside its locked run folder, as named steps: :meth:`prepare` (model, recipe,
    precision), :meth:`resume` (from ``state.pt``), :meth:`prepare_data`, then :meth:`run_stage` for each
    stage left, with a :meth:`checkpoint` every ``checkpoint_every`` steps and at each stage's end."""

    entry: Any
    config: Any
    dataset: Any
    out_dir: Path
    device: torch.device
    key: str
    settings: TrainSettings
    val_data: Any  # the held-out data set, resolved (None: no validation)
    progress: bool
    extra_meta: dict[str, Any]

    def __post_init__(self) -> None:
        self.ckpt_path = self.out_dir / "model.safetensors"
        self.state_path = self.out_dir / "state.pt"
        self.log_path = self.out_dir / "log.jsonl"
        self.task = self.entry.task
        # what the loader downscales by: an SR model's own scale, a colorizer the bench's
        self.scale = loader_scale(self.task, self.config, self.settings)
        self.batch_size, self.patch_size = int(self.config.batch_size), int(self.config.patch_size)
        self.start = self.step = 0  # the step resumed from, the last step done
        self.images = 0  # trained on in this call, for the rate the progress bar shows
        self.t0 = self.seconds_before = 0.0  # when this call's steps began; training time of earlier calls
        self.steps, self.seed = self.settings.steps, self.settings.seed
        self.validator = None if self.val_data is None else validation.Validator(
            self.val_data, self.settings.validation_spacing, self.out_dir / runs.VAL_LOG, task=self.task,
            patch_size=self.patch_size, scale=self.scale, batch_size=self.batch_size, total_steps=self.steps)

    def run(self) -> TrainResult:
        self.prepare()
        state = self.resume()
        if self.start >= self.steps:  # a crash after state.pt, before the weights file: publish the final weights
            seconds = float(state["seconds"])
            ckpt.save_checkpoint(self.ckpt_path, self.model, {**self.meta(self.start), "train_seconds": seconds})
            return TrainResult(self.ckpt_path, self.steps, 0.0, self.start, list(self.ctx.notes), trained=False)
        self.prepare_data()
        threads_before = torch.get_num_threads()
        bar = None
        try:
            batches = self.batches()
            bar = self.progress_bar()
            self.step, self.t0 = self.start, time.perf_counter()
            self.seconds_before = float(state["seconds"]) if state is not None else 0.0
            for stage, _, end in self.plan:
                if end > self.step:
                    self.start_stage(stage, state)
                    state = None  # what a resume restores goes into the first stage run, once
                    self.run_stage(stage, end, batches, bar)
        except NonFiniteLossError as exc:
            raise ZooError(f"training {self.entry.name} stopped at step {self.step}: {exc}") from None
        finally:
            if bar is not None:
                bar.close()
            torch.set_num_threads(threads_before)
        return TrainResult(self.ckpt_path, self.step, time.perf_counter() - self.t0, self.start, list(self.ctx.notes))

    def prepare(self) -> None:
        """The model and its recipe, built by :func:`setup` (what the dry run measures, too), and what the run
        records about its data and environment."""
        self.fingerprint = self.dataset.fingerprint()
        self.facts = devicefacts.gather(self.device)  # after train()'s finished-run check: asking CUDA starts it
        built = setup(self.entry, self.config, self.device, self.settings, self.facts)
        self.model, self.recipe, self.ctx, self.plan = built.model, built.recipe, built.ctx, built.plan
        self.resolved, self.channels_last, self.parameters = built.precision, built.channels_last, built.parameters
        self.environment = environment(self.device, self.settings.command)

    def resume(self) -> dict[str, Any] | None:
        """The run's ``state.pt`` if it can be continued (its weights loaded, its step and notes taken), else
        None. Its optimiser and RNG states are restored when its stage starts (:meth:`start_stage`)."""
        state = ckpt.load_state(self.state_path, self.key)
        if state is not None:  # the weights come from state.pt, the one file that is a consistent checkpoint
            self.model.load_state_dict(state["model"])
            self.start = int(state["step"])
            for note in state.get("notes", []):
                self.ctx.note(note)
        return state

    def meta(self, step: int) -> dict[str, Any]:
        """What ``model.json`` says about the weights at ``step``."""
        entry = self.entry
        return {
            "model": entry.name, "task": self.task, "distribution": entry.distribution,
            "plugin_version": entry.version, "config": config_to_dict(self.config),
            "recipe": f"{entry.recipe.__module__}.{entry.recipe.__qualname__}",
            "data": self.fingerprint, "seed": self.seed, "steps": step, "target_steps": self.steps,
            "data_scale": self.settings.data_scale, "run_key": self.key, "notes": list(self.ctx.notes),
            "device": str(self.device), "precision": self.resolved, "channels_last": bool(self.channels_last),
            "parameters": self.parameters, "deterministic": bool(self.settings.deterministic),
            "versions": {entry.distribution: entry.version}, "environment": self.environment,
            **({"validation": self.validator.describe()} if self.validator else {}), **self.extra_meta,
        }

    def prepare_data(self) -> None:
        """The log keeps the steps before the resume point (:class:`zoo.training.steplog.StepLog` appends the rest); a
        fresh run first shows the recipe a few batches (:meth:`zoo.plugins.recipe.Recipe.prepare`, e.g. to estimate a
        colour prior)."""
        runs.truncate_log(self.log_path, self.start)
        if self.validator is not None:
            self.validator.resume_at(self.start)
            self.validator.batches()  # held-out images too small for a crop stop the run now, not at a validation
        self.steplog = StepLog(self.log_path, self.ctx.read_every)
        if self.start == 0:
            prep = loader.make_train_loader(self.dataset, task=self.task, patch_size=self.patch_size, scale=self.scale,
                                          batch_size=self.batch_size, seed=self.seed + 7919, workers=0,
                                          steps=PREPARE_BATCHES)
            self.recipe.prepare(_to_device(b, self.device, self.task, False) for b in prep)

    def batches(self):
        """The stream of the steps left, from loader processes sized for the device."""
        loading = share_cores(self.device, self.facts, self.settings.workers)
        workers = loading.workers
        stream = loader.make_train_loader(self.dataset, task=self.task, patch_size=self.patch_size, scale=self.scale,
                                          batch_size=self.batch_size, seed=self.seed, workers=workers,
                                          start_step=self.start, steps=self.steps - self.start,
                                          pin_memory=loading.pin_memory, cache_mb=loading.cache_mb, uint8=True)
        return iter(stream)

    def progress_bar(self):
        """A tqdm bar from the resume point (None without ``progress``)."""
        if not self.progress:
            return None
        return tqdm(total=self.steps, initial=self.start, desc=f"train {self.entry.name}", unit="step",
                    dynamic_ncols=True, leave=False)

    def start_stage(self, stage: Stage, state: dict[str, Any] | None) -> None:
        """The recipe's optimisers for ``stage``; when resuming, their saved state and the RNG's."""
        self.recipe.start_stage(stage)
        if state is not None:  # resuming: optimiser state (mid-stage only) and RNG, once
            if state.get("stage") == stage.name:
                self.recipe.load_state_dict(state["recipe"])
            rngstate.restore(state["rng"], self.device)
        self.model.train()

    def run_stage(self, stage: Stage, end: int, batches, bar) -> None:
        """The steps of ``stage`` up to ``end``."""
        while self.step < end:
            batch = _to_device(next(batches), self.device, self.task, self.channels_last)
            logs = self.recipe.training_step(batch, stage, self.step)
            self.step += 1
            self.images += self.batch_size
            read = self.steplog.add(self.step, stage.name, logs, self.ctx.take_unchecked())
            if bar is not None:
                if read:
                    rate = self.images / max(time.perf_counter() - self.t0, 1e-9)
                    bar.set_postfix({**{k: f"{v:.4g}" for k, v in self.steplog.latest.items()},
                                     "img/s": f"{rate:.1f}"}, refresh=False)
                bar.update(1)
            if self.validator is not None and self.validator.due(self.step):  # before the checkpoint of this step
                self.validator.run(self.recipe, stage, self.step,
                                   lambda b: _to_device(b, self.device, self.task, self.channels_last))
            if self.step % self.settings.checkpoint_every == 0 or self.step == end:
                self.checkpoint(stage)

    def checkpoint(self, stage: Stage) -> None:
        """``state.pt`` and the published weights at the current step (:func:`zoo.store.checkpoint.write_checkpoint`).
        """
        self.steplog.flush()  # reads (and checks) the losses first: a checkpoint is never of bad weights
        seconds = self.seconds_before + time.perf_counter() - self.t0
        ckpt.write_checkpoint(self.model, self.recipe, self.ckpt_path, self.state_path,
              {**self.meta(self.step), "train_seconds": seconds}, self.key, self.step, stage.name, seconds)


__all__ = ["PRECISIONS", "Setup", "TrainResult", "TrainSettings", "completed_steps", "default_channels_last",
           "default_workers", "read_log",
           "resolve_precision", "run_key", "setup", "share_cores", "stage_plan", "train"]
