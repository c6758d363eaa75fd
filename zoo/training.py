"""The one training loop every model shares; what differs per model lives in its :class:`~zoo.recipe.Recipe`.

The loop owns: data (streamed patches), device placement, seeding, mixed precision, the ``channels_last``
memory format (see :func:`default_channels_last`), the progress bar, periodic atomic checkpoints and resumption. A run directory holds::

    model.safetensors, model.json   the weights and what they are (config, recipe, data, notes, versions)
    state.pt                        optimisers, RNG state and step: enough to continue exactly
    log.jsonl                       one line of losses per step (for curves), written at each checkpoint

Resuming: the data stream is a pure function of (seed, step) and the RNG state is checkpointed, so a run
interrupted at any checkpoint and continued ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo import devicefacts, rngstate
from zoo.checkpoint import atomic_torch_save, save_checkpoint
from zoo.config import config_to_dict
from zoo.devicefacts import PRECISIONS
from zoo.errors import ZooError
from zoo.recipe import NonFiniteLossError, Stage, TrainContext

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


def stage_plan(stages: tuple[Stage, ...], total: int) -> list[tuple[Stage, int, int]]:
    """``(stage, first_step, end_step)`` for each stage with at least one step."""
    weights = [max(0.0, s.fraction) for s in stages]
    if sum(weights) <= 0:
        raise ZooError("a recipe's stage fractions add up to zero")
    bounds, acc = [0], 0.0
    for w in weights:
        acc += w
        bounds.append(round(total * acc / sum(weights)))
    return [(s, a, b) for s, a, b in zip(stages, bounds[:-1], bounds[1:]) if b > a]


def resolve_precision(precision: str, device: torch.device, facts: devicefacts.DeviceFacts | None = None) -> str:
    """What a requested precision means on ``device``: "fp32", "bf16" or "fp16" (rules:
    :func:`zoo.devicefacts.choose_precision`, from the compute capability of ``device`` itself)."""
    if facts is None:
        facts = devicefacts.gather(device) if device.type == "cuda" else devicefacts.DeviceFacts(device.type)
    return devicefacts.choose_precision(precision, facts)


def run_key(entry, config, data_fingerprint: str, seed: int, steps: int, data_scale: int,
            precision: str = "auto", channels_last: bool | None = None, deterministic: bool = False) -> str:
    """Content address of a training run: everything its weights depend on."""
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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, task: str, channels_last: bool):
    # uint8 batches (a quarter of the bytes to copy) become [0, 1] on the device; dividing by a device tensor,
    # not a Python number, keeps a true division (CUDA multiplies by the reciprocal of a scalar divisor)
    out = {k: _unit(v.to(device, non_blocking=True)) for k, v in batch.items()}
    if task == "colorizer":
        from zoo.color import split_lab

        out["l"], out["ab"] = split_lab(out["rgb"])
    if channels_last:
        out = {k: v.contiguous(memory_format=torch.channels_last) for k, v in out.items()}
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        return x.float()
    from zoo.constants import constant

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
    """Loader processes the loop uses unless told otherwise (:func:`zoo.devicefacts.loader_plan`: none on 2
    CPU cores, the cores per GPU on CUDA). Batches do not depend on the worker count."""
    return devicefacts.loader_plan(devicefacts.gather(device or torch.device("cpu"))).workers


def train(entry, config, dataset, *, steps: int, out_dir: Path, device: torch.device, seed: int = 0,
          data_scale: int = 1, checkpoint_every: int = 100, workers: int | None = None, precision: str = "auto",
          channels_last: bool | None = None, progress: bool = True, extra_meta: dict[str, Any] | None = None,
          force: bool = False, command: str | None = None, deterministic: bool = False,
          read_every: int | None = None) -> TrainResult:
    """Train ``entry`` (a trainable ModelEntry) with ``config`` on ``dataset`` for ``steps`` steps.

    ``data_scale``: colorizers learn on the colour LR images, i.e. the data downscaled by the benchmark's
    SR scale; SR models take their scale from ``config.scale``. Continues a run found in ``out_dir``; a folder
    holding another run or foreign files is refused unless ``force`` (:func:`zoo.folders.claim_train_dir`).
    One process at a time trains in ``out_dir``: another one waits for it, then finds the run finished.
    ``command``: the command line recorded in the checkpoint (default: this process's own).
    ``deterministic``: see :mod:`zoo.determinism`. ``read_every``: steps between reads of the losses
    (default :func:`zoo.devicefacts.read_every`).
    """
    from zoo.folders import claim_train_dir, locked

    if entry.recipe is None:
        raise ZooError(f"model '{entry.name}' has nothing to train (it is a fixed baseline)")
    if steps < 1:
        raise ZooError(f"steps must be at least 1, got {steps}")
    if checkpoint_every < 1:
        raise ZooError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "model.safetensors"
    key = run_key(entry, config, dataset.fingerprint(), seed, steps, data_scale, precision, channels_last,
                  deterministic)
    resolve_precision(precision, device)  # an impossible precision fails before any file is touched
    finished = _finished_run(ckpt_path, key, steps)
    if finished is not None:  # nothing to build or load: a warm benchmark only needs the file
        return TrainResult(ckpt_path, steps, 0.0, steps, finished, trained=False)
    claim_train_dir(out_dir, key, force)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"cannot create {out_dir}: {exc.strerror or exc}") from None

    def waiting():
        import sys

        print(f"zoo: {entry.name}: another process is training this run in {out_dir}; waiting for it",
              file=sys.stderr, flush=True)

    with locked(out_dir / ".lock", on_wait=waiting):
        finished = _finished_run(ckpt_path, key, steps)  # the process we waited for may have finished it
        if finished is not None:
            return TrainResult(ckpt_path, steps, 0.0, steps, finished, trained=False)
        return _train_here(entry, config, dataset, steps=steps, out_dir=out_dir, device=device, seed=seed,
                           data_scale=data_scale, checkpoint_every=checkpoint_every, workers=workers,
                           precision=precision, channels_last=channels_last, progress=progress,
                           extra_meta=extra_meta, key=key, command=command, deterministic=deterministic,
                           read_every=read_every)


def _train_here(entry, config, dataset, *, steps, out_dir, device, seed, data_scale, checkpoint_every, workers,
                precision, channels_last, progress, extra_meta, key, command, deterministic,
                read_every) -> TrainResult:
    """The loop of :func:`train`, holding the run folder's lock."""
    from zoo.loader import make_train_loader
    from zoo.models import count_parameters

    ckpt_path, state_path, log_path = out_dir / "model.safetensors", out_dir / "state.pt", out_dir / "log.jsonl"
    task = entry.task
    scale = int(getattr(config, "scale", 1)) if task == "sr" else int(data_scale)
    batch_size, patch_size = int(config.batch_size), int(config.patch_size)
    entry.recipe.check_config(config)
    fingerprint = dataset.fingerprint()
    facts = devicefacts.gather(device)  # after the finished-run check in train(): asking CUDA starts CUDA
    resolved = resolve_precision(precision, device, facts)

    if channels_last is None:
        channels_last = default_channels_last(device)
    from zoo.determinism import configure

    configure(deterministic, device)
    seed_everything(seed)
    model = entry.build(config).to(device)
    parameters = count_parameters(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ctx = TrainContext(device=device, total_steps=steps, precision=resolved,
                       read_every=devicefacts.read_every(facts) if read_every is None else int(read_every))
    if resolved != "fp32":
        ctx.note(f"trained with {resolved} autocast (weights and optimiser in float32)")
    emulated = devicefacts.precision_warning(resolved, facts)
    if emulated:
        ctx.note(emulated)
    if deterministic:
        ctx.note("trained with --deterministic (deterministic algorithms, fixed cuDNN choices)")
    recipe = entry.recipe(model, config, ctx)
    recipe.aux.to(device)
    if channels_last:
        recipe.aux.to(memory_format=torch.channels_last)
    plan = stage_plan(tuple(recipe.stages), steps)

    start = 0
    state = _load_state(state_path, key)
    if state is not None:  # the weights come from state.pt, the one file that is a consistent checkpoint
        model.load_state_dict(state["model"])
        start = int(state["step"])
        for note in state.get("notes", []):
            ctx.note(note)

    from zoo.provenance import environment

    env = environment(device, command)

    def meta(step: int) -> dict[str, Any]:
        return {
            "model": entry.name, "task": task, "distribution": entry.distribution,
            "plugin_version": entry.version, "config": config_to_dict(config),
            "recipe": f"{entry.recipe.__module__}.{entry.recipe.__qualname__}",
            "data": fingerprint, "seed": seed, "steps": step, "target_steps": steps, "data_scale": data_scale,
            "run_key": key, "notes": list(ctx.notes), "device": str(device), "precision": resolved,
            "channels_last": bool(channels_last), "parameters": parameters, "deterministic": bool(deterministic),
            "versions": {entry.distribution: entry.version}, "environment": env, **(extra_meta or {}),
        }

    if start >= steps:  # a crash after state.pt, before the weights file: publish the final weights now
        save_checkpoint(ckpt_path, model, {**meta(start), "train_seconds": float(state["seconds"])})
        return TrainResult(ckpt_path, steps, 0.0, start, list(ctx.notes), trained=False)

    if start == 0:
        _truncate_log(log_path, 0)
        prep = make_train_loader(dataset, task=task, patch_size=patch_size, scale=scale, batch_size=batch_size,
                                 seed=seed + 7919, workers=0, steps=PREPARE_BATCHES)
        recipe.prepare(_to_device(b, device, task, False) for b in prep)
    else:
        _truncate_log(log_path, start)

    cpus = facts.cpus
    threads_before = torch.get_num_threads()
    loading = devicefacts.loader_plan(facts, workers)
    workers = loading.workers
    if device.type == "cpu":
        # Loader processes and intra-op threads share the cores; oversubscribing them slows small
        # convolutions 5-10x. Never raise a thread count the caller lowered.
        torch.set_num_threads(max(1, min(threads_before, cpus - workers)))
    loader = make_train_loader(dataset, task=task, patch_size=patch_size, scale=scale, batch_size=batch_size,
                               seed=seed, workers=workers, start_step=start, steps=steps - start,
                               pin_memory=loading.pin_memory, cache_mb=loading.cache_mb, uint8=True)
    from zoo.steplog import StepLog

    steplog = StepLog(log_path, ctx.read_every)
    batches = iter(loader)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"train {entry.name}", unit="step", dynamic_ncols=True,
                   leave=False)
    step, t0, images = start, time.perf_counter(), 0
    seconds_before = float(state["seconds"]) if state is not None else 0.0
    try:
        for stage, first, end in plan:
            if end <= step:
                continue
            recipe.start_stage(stage)
            if state is not None:  # resuming: optimiser state (mid-stage only) and RNG, once
                if state.get("stage") == stage.name:
                    recipe.load_state_dict(state["recipe"])
                rngstate.restore(state["rng"], device)
                state = None
            model.train()
            while step < end:
                batch = _to_device(next(batches), device, task, channels_last)
                logs = recipe.training_step(batch, stage, step)
                step += 1
                images += batch_size
                read = steplog.add(step, stage.name, logs, ctx.take_unchecked())
                if bar is not None:
                    if read:
                        rate = images / max(time.perf_counter() - t0, 1e-9)
                        bar.set_postfix({**{k: f"{v:.4g}" for k, v in steplog.latest.items()},
                                         "img/s": f"{rate:.1f}"}, refresh=False)
                    bar.update(1)
                if step % checkpoint_every == 0 or step == end:
                    steplog.flush()  # reads (and checks) the losses first: a checkpoint is never of bad weights
                    seconds = seconds_before + time.perf_counter() - t0
                    _save(model, recipe, ckpt_path, state_path, {**meta(step), "train_seconds": seconds},
                          key, step, stage.name, seconds)
    except NonFiniteLossError as exc:
        raise ZooError(f"training {entry.name} stopped at step {step}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads_before)
    return TrainResult(ckpt_path, step, time.perf_counter() - t0, start, list(ctx.notes))


def _save(model, recipe, ckpt_path: Path, state_path: Path, meta: dict, key: str, step: int, stage: str,
          seconds: float) -> None:
    """One checkpoint. ``state.pt`` is the unit a resume trusts: weights, optimisers, RNG and step in one
    atomic file, written first. The published pair (``model.safetensors`` + ``model.json``, what ``zoo eval``
    and the bench read) follows, each part stamped with the run key and step, so a crash between any two
    writes leaves either a complete older checkpoint or a torn pair that is detected and rewritten."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(state_path, {"key": key, "step": step, "stage": stage, "model": weights,
                                   "recipe": recipe.state_dict(), "rng": rngstate.capture(recipe.ctx.device),
                                   "notes": list(meta["notes"]), "seconds": seconds})
    save_checkpoint(ckpt_path, model, meta)


def _finished_run(ckpt_path: Path, key: str, steps: int) -> list[str] | None:
    """The notes of the run in ``ckpt_path`` if it is this run (``key``) and has all its ``steps``, else None.

    The sidecar is written after the weights, and both carry the step: a sidecar at the last step whose
    weights carry the same stamp means final weights, whatever became of ``state.pt`` (which is only needed
    to resume). Weights without a stamp come from before stamps existed, when the same order held.
    """
    from zoo.checkpoint import sidecar, torn

    try:
        meta = json.loads(sidecar(ckpt_path).read_text())
        done = meta.get("run_key") == key and int(meta.get("steps", -1)) >= steps and ckpt_path.is_file()
        if done and torn(ckpt_path, meta):
            done = False
    except (OSError, ValueError, TypeError, AttributeError, ZooError):  # missing, torn or foreign
        return None
    return list(meta.get("notes", [])) if done else None


def completed_steps(out_dir: Path, key: str, steps: int) -> int:
    """Steps of run ``key`` done in ``out_dir``: ``steps`` when finished, the last checkpoint's step when it can
    resume, else 0. Reads and writes nothing else (``zoo bench --dry-run``)."""
    out_dir = Path(out_dir)
    if _finished_run(out_dir / "model.safetensors", key, steps) is not None:
        return steps
    state = _load_state(out_dir / "state.pt", key)
    return int(state["step"]) if state is not None else 0


def _load_state(state_path: Path, key: str) -> dict[str, Any] | None:
    if not state_path.is_file():
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start afresh rather than crash
        return None
    # A state.pt without weights predates the one-file checkpoint: its weights file may be from another
    # step, so it cannot be resumed exactly.
    ok = isinstance(state, dict) and state.get("key") == key and isinstance(state.get("model"), dict)
    return state if ok else None


def _log_lines(log_path: Path) -> list[dict[str, Any]]:
    # A kill can cut the last line short: such a line is dropped (its step is redone on resume).
    out = []
    for ln in log_path.read_text().splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            continue
    return out


def _truncate_log(log_path: Path, step: int) -> None:
    from zoo.checkpoint import atomic_write_bytes

    if not log_path.exists():
        return
    if step == 0:
        log_path.unlink()
        return
    kept = [r for r in _log_lines(log_path) if r.get("step", 0) <= step]
    atomic_write_bytes(log_path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "log.jsonl"
    return _log_lines(path) if path.exists() else []


__all__ = ["PRECISIONS", "TrainResult", "completed_steps", "default_channels_last", "default_workers", "read_log",
           "resolve_precision", "run_key", "stage_plan", "train"]
