"""The one training loop every model shares; what differs per model lives in its :class:`~zoo.training.recipe.Recipe`.

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

# loader.make_train_loader and ckpt.write_checkpoint are looked up at each call: tests wrap them
from zoo.runtime import devicefacts, rngstate
from zoo.runtime.constants import constant
from zoo.runtime.determinism import configure as configure_determinism
from zoo.runtime.devicefacts import PRECISIONS
from zoo.runtime.provenance import environment
from zoo.store import checkpoint as ckpt
from zoo.store import runs
from zoo.store.cache import content_key
from zoo.store.checkpoint import completed_steps  # part of this module's API (__all__)
from zoo.store.files import claim_train_dir, locked
from zoo.store.runs import read_log  # likewise
from zoo.training import validation
from zoo.training.recipe import NonFiniteLossError, Stage, TrainContext, stage_plan
from zoo.training.steplog import StepLog
from zoo.training.validation import FORMAT as VALIDATION_FORMAT

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


def run_key(entry, config, data_fingerprint: str, seed: int, steps: int, data_scale: int,
            precision: str = "auto", channels_last: bool | None = None, deterministic: bool = False,
            validation: tuple[str, int] | None = None) -> str:
    """Content address of a training run: everything its weights depend on, and its validation
    ``(data fingerprint, every)`` when it has one (the weights do not depend on it, but the run folder does)."""
    recipe = entry.recipe
    payload = {
        "model": entry.name,
        "distribution": entry.distribution,
        "version": entry.version,
        "config": config_to_dict(config),
        "recipe": f"{recipe.__module__}.{recipe.__qualname__}" if recipe else None,
        "data": data_fingerprint,
        "seed": seed,
        "steps": steps,
        "data_scale": data_scale,
    }
    if precision != "auto":  # only when asked for, so keys of default runs stay as they were
        payload["precision"] = precision
    if channels_last is not None:  # likewise: only an explicit memory format
        payload["channels_last"] = bool(channels_last)
    if deterministic:  # a cached run trained without it is not what --deterministic promises
        payload["deterministic"] = True
    if validation is not None:  # else a cached run without val.jsonl would be taken for one with it
        payload["validation"] = [*validation, VALIDATION_FORMAT]
    return content_key(payload)


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


def train(entry, config, dataset, *, steps: int, out_dir: Path, device: torch.device, seed: int = 0,
          data_scale: int = 1, checkpoint_every: int = 100, workers: int | None = None, precision: str = "auto",
          channels_last: bool | None = None, progress: bool = True, extra_meta: dict[str, Any] | None = None,
          force: bool = False, command: str | None = None, deterministic: bool = False,
          read_every: int | None = None, val_data=None, val_every: int = 0) -> TrainResult:
    """Train ``entry`` (a trainable ModelEntry) with ``config`` on ``dataset`` for ``steps`` steps.

    ``data_scale``: colorizers learn on the colour LR images, i.e. the data downscaled by the benchmark's
    SR scale; SR models take their scale from ``config.scale``. Continues a run found in ``out_dir``; a folder
    holding another run or foreign files is refused unless ``force`` (:func:`zoo.store.files.claim_train_dir`).
    One process at a time trains in ``out_dir``: another one waits for it, then finds the run finished.
    ``command``: the command line recorded in the checkpoint (default: this process's own).
    ``deterministic``: see :mod:`zoo.runtime.determinism`. ``read_every``: steps between reads of the losses
    (default :func:`zoo.runtime.devicefacts.read_every`). ``val_data``: held-out images the recipe's losses are
    measured on every ``val_every`` steps (default: 20 times a run) into ``val.jsonl`` (:mod:`zoo.training.validation`).
    """
    if entry.recipe is None:
        raise ZooError(f"model '{entry.name}' has nothing to train (it is a fixed baseline)")
    if steps < 1:
        raise ZooError(f"steps must be at least 1, got {steps}")
    if checkpoint_every < 1:
        raise ZooError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    out_dir = Path(out_dir)
    val_every = validation.spacing(val_every, steps)
    if val_data is not None:
        val_data = resolve_dataset(val_data)
    val_fp = None if val_data is None else val_data.fingerprint()
    key = run_key(entry, config, dataset.fingerprint(), seed, steps, data_scale, precision, channels_last,
                  deterministic, validation.key_part(val_fp, val_every, steps))
    resolve_precision(precision, device)  # an impossible precision fails before any file is touched
    finished = _finished_result(out_dir, key, steps)
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
        finished = _finished_result(out_dir, key, steps)  # the process we waited for may have finished it
        if finished is not None:
            return finished
        run = _TrainRun(entry, config, dataset, out_dir, device, key, steps=steps, seed=seed, data_scale=data_scale,
                        checkpoint_every=checkpoint_every, workers=workers, precision=precision,
                        channels_last=channels_last, progress=progress, extra_meta=extra_meta or {},
                        command=command, deterministic=deterministic, read_every=read_every,
                        val_data=val_data, val_every=val_every)
        return run.run()


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
    steps: int
    seed: int
    data_scale: int
    checkpoint_every: int
    workers: int | None
    precision: str
    channels_last: bool | None
    progress: bool
    extra_meta: dict[str, Any]
    command: str | None
    deterministic: bool
    read_every: int | None
    val_data: Any
    val_every: int

    def __post_init__(self) -> None:
        self.ckpt_path = self.out_dir / "model.safetensors"
        self.state_path = self.out_dir / "state.pt"
        self.log_path = self.out_dir / "log.jsonl"
        self.task = self.entry.task
        # what the loader downscales by: an SR model's own scale, a colorizer the bench's
        self.scale = int(getattr(self.config, "scale", 1)) if self.task == "sr" else int(self.data_scale)
        self.batch_size, self.patch_size = int(self.config.batch_size), int(self.config.patch_size)
        self.start = self.step = 0  # the step resumed from, the last step done
        self.images = 0  # trained on in this call, for the rate the progress bar shows
        self.t0 = self.seconds_before = 0.0  # when this call's steps began; training time of earlier calls
        self.validator = None if self.val_data is None else validation.Validator(
            self.val_data, self.val_every, self.out_dir / runs.VAL_LOG, task=self.task,
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
        """Check the config, then build the model and its recipe on the device, seeded, in the run's precision
        and memory format; the notes say what the run does differently from a plain float32 one."""
        entry, device = self.entry, self.device
        entry.recipe.check_config(self.config)
        self.fingerprint = self.dataset.fingerprint()
        facts = self.facts = devicefacts.gather(device)  # after train()'s finished-run check: asking CUDA starts it
        self.resolved = resolve_precision(self.precision, device, facts)
        if self.channels_last is None:
            self.channels_last = default_channels_last(device)
        configure_determinism(self.deterministic, device)
        seed_everything(self.seed)
        model = entry.build(self.config).to(device)
        self.parameters = count_parameters(model)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        ctx = self.ctx = TrainContext(device=device, total_steps=self.steps, precision=self.resolved,
                                      read_every=devicefacts.read_every(facts) if self.read_every is None
                                      else int(self.read_every))
        if self.resolved != "fp32":
            ctx.note(f"trained with {self.resolved} autocast (weights and optimiser in float32)")
        emulated = devicefacts.precision_warning(self.resolved, facts)
        if emulated:
            ctx.note(emulated)
        if self.deterministic:
            ctx.note("trained with --deterministic (deterministic algorithms, fixed cuDNN choices)")
        recipe = self.recipe = entry.recipe(model, self.config, ctx)
        recipe.aux.to(device)
        if self.channels_last:
            recipe.aux.to(memory_format=torch.channels_last)
        self.plan = stage_plan(tuple(recipe.stages), self.steps)
        self.environment = environment(self.device, self.command)

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
            "data_scale": self.data_scale, "run_key": self.key, "notes": list(self.ctx.notes),
            "device": str(self.device), "precision": self.resolved, "channels_last": bool(self.channels_last),
            "parameters": self.parameters, "deterministic": bool(self.deterministic),
            "versions": {entry.distribution: entry.version}, "environment": self.environment,
            **({"validation": self.validator.describe()} if self.validator else {}), **self.extra_meta,
        }

    def prepare_data(self) -> None:
        """The log keeps the steps before the resume point (:class:`zoo.training.steplog.StepLog` appends the rest); a
        fresh run first shows the recipe a few batches (:meth:`zoo.training.recipe.Recipe.prepare`, e.g. to estimate a
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
        loading = devicefacts.loader_plan(self.facts, self.workers)
        workers = loading.workers
        if self.device.type == "cpu":
            # Loader processes and intra-op threads share the cores; oversubscribing them slows small
            # convolutions 5-10x. Never raise a thread count the caller lowered.
            torch.set_num_threads(max(1, min(torch.get_num_threads(), self.facts.cpus - workers)))
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
            if self.step % self.checkpoint_every == 0 or self.step == end:
                self.checkpoint(stage)

    def checkpoint(self, stage: Stage) -> None:
        """``state.pt`` and the published weights at the current step (:func:`zoo.store.checkpoint.write_checkpoint`).
        """
        self.steplog.flush()  # reads (and checks) the losses first: a checkpoint is never of bad weights
        seconds = self.seconds_before + time.perf_counter() - self.t0
        ckpt.write_checkpoint(self.model, self.recipe, self.ckpt_path, self.state_path,
              {**self.meta(self.step), "train_seconds": seconds}, self.key, self.step, stage.name, seconds)


__all__ = ["PRECISIONS", "TrainResult", "completed_steps", "default_channels_last", "default_workers", "read_log",
           "resolve_precision", "run_key", "stage_plan", "train"]
