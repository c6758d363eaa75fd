"""Training recipes: what is model-specific about training, kept beside each architecture.

The zoo has one training loop (:mod:`zoo.training.loop`). It owns data, device, seeding, mixed precision,
progress, checkpoints and resumption. A model's :class:`Recipe` owns the rest: its stages, optimisers,
schedules, auxiliary networks (discriminators, VGG feature extractors) and the losses of one step.

Batches the loop hands to ``training_step`` (all tensors on the training device, float32):
- colorizers: ``{"l": (B,1,H,W) in [0,100], "ab": (B,2,H,W) Lab units, "rgb": (B,3,H,W) in [0,1]}``
  (patches of the colour LR images);
- SR models: ``{"lr": (B,3,h,w), "hr": (B,3,h*scale,w*scale)}``, RGB in [0,1], the LR made from the HR
  patch by MATLAB-compatible bicubic.

``training_step`` returns the step's losses to log: floats, or 0-dim tensors, which the loop keeps on the
device and reads every few steps (:mod:`zoo.training.steplog`). ``float()`` of a GPU tensor waits for the GPU, so
return what :meth:`Recipe.backward_step` returns and wrap other values in :meth:`Recipe.loggable`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError


class NonFiniteLossError(ZooError):
    """A loss became NaN or infinite; the loop stops and keeps the last good checkpoint."""


@dataclass
class TrainContext:
    """What the loop tells a recipe about the run, and what the recipe tells back."""

    device: torch.device
    total_steps: int
    # "fp32", or mixed precision: "bf16" (autocast; weights and optimiser stay float32) or "fp16" (CUDA
    # only, with loss scaling). Resolved from the user's choice by ``zoo.training.loop.resolve_precision``.
    precision: str = "fp32"
    # Facts a leaderboard must show, e.g. "vgg19 weights: missing -> content loss off".
    notes: list[str] = field(default_factory=list)
    # Steps between reads of the losses (zoo.runtime.devicefacts.read_every). 1: backward_step reads and checks each
    # loss at once; more: it returns the loss as a device tensor and leaves it in ``unchecked`` for the loop.
    read_every: int = 1
    unchecked: list[tuple[str, torch.Tensor]] = field(default_factory=list)

    def take_unchecked(self) -> list[tuple[str, torch.Tensor]]:
        taken, self.unchecked = self.unchecked, []
        return taken

    @property
    def amp(self) -> bool:
        return self.precision != "fp32"

    @property
    def amp_dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.bfloat16

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class Stage:
    """One phase of training (e.g. SRGAN's MSE pre-training, then the GAN phase).

    ``fraction`` is its share of the run's total steps; fractions of all stages add up to 1.
    """

    name: str
    fraction: float = 1.0


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


def linear_decay(optimizer: torch.optim.Optimizer, steps: int, decay_from: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Keep the rate for the first ``decay_from`` of ``steps`` updates, then lower it linearly towards zero by the
    last one: the schedule of the pix2pix/CycleGAN code (constant, then linear decay). ``decay_from=1``: constant."""
    hold = min(steps, max(0, round(steps * decay_from)))
    span = steps - hold + 1  # the last update still gets a small, non-zero rate

    def factor(k: int) -> float:
        return 1.0 if k < hold or hold == steps else max(0.0, (steps - k) / span)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Recipe:
    """Base class of a model's training recipe. Subclass it next to the architecture.

    Lifecycle, driven by the loop:
    1. ``recipe = RecipeClass(model, config, ctx)``;
    2. ``prepare(batches)`` once before the first step of a fresh run (e.g. a colour prior from data);
    3. for each stage: ``start_stage(stage)`` (build its optimisers), then ``training_step(batch, stage, step)``
       repeatedly, which returns the losses to log (floats, or 0-dim tensors left on the device);
    4. ``state_dict()`` / ``load_state_dict()`` for checkpoints (optimisers, schedulers, auxiliary nets);
    5. optionally ``validation_losses(batch, stage)`` every few steps on fixed held-out batches, and
       ``reference_losses(batch, stage)``: the same losses for an answer that needs no training.
    """

    stages: tuple[Stage, ...] = (Stage("main"),)

    def __init__(self, model: nn.Module, config: Any, ctx: TrainContext):
        self.model = model
        self.config = config
        self.ctx = ctx
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        # Auxiliary trainable networks (discriminators) whose weights belong in checkpoints.
        self.aux: nn.ModuleDict = nn.ModuleDict()
        self._scalers: dict[str, Any] = {}  # GradScalers by optimiser name (float16 only)

    # -- hooks for subclasses ------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any) -> None:
        """Raise a ZooError for a configuration this recipe cannot train as intended. Called when a training is
        planned, before anything is built (default: every configuration is fine)."""

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Look at some training batches before training (default: nothing)."""

    def start_stage(self, stage: Stage) -> None:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], stage: Stage, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def validation_losses(self, batch: dict[str, torch.Tensor], stage: Stage) -> dict[str, torch.Tensor] | None:
        """The losses of ``stage`` on a held-out batch, as 0-dim tensors, without any update (default: None, no
        validation). The loop calls it under ``torch.no_grad()`` with the model in eval mode and the RNG state
        put back afterwards, so validating never changes what training does."""
        return None

    def reference_losses(self, batch: dict[str, torch.Tensor], stage: Stage) -> dict[str, torch.Tensor] | None:
        """``validation_losses``'s losses for the task's untrained answer on the same held-out batch (default:
        None). Colorizers: ab = 0 (the ``gray`` baseline), or the colour prior at every pixel for a loss that
        needs a distribution; SR: bicubic upscaling. A validated loss divided by its reference is what the model
        learnt beyond that answer, free of the batch-to-batch difficulty a raw loss carries. Called like
        ``validation_losses``; it must not touch the model's state."""
        return None

    # -- helpers -------------------------------------------------------------------------------------
    def autocast(self):
        """Mixed precision when the run asks for it (``ctx.precision``); a no-op in float32."""
        return torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype, enabled=self.ctx.amp)

    def backward_step(self, loss: torch.Tensor, optimizer_name: str, *,
                      params: Iterable[nn.Parameter] | None = None) -> float | torch.Tensor:
        """Check ``loss`` is finite, back-propagate, step the named optimiser (and its scheduler).

        With ``ctx.read_every == 1`` it raises :class:`NonFiniteLossError` before touching any weight when the
        loss is not finite, and returns the loss as a float. Otherwise it returns the detached loss tensor
        without waiting for the device; the loop checks it with the step's other losses. Backward and the
        optimiser step run outside autocast, whatever the caller's ``with`` block (as torch recommends). In
        float16 the step goes through a GradScaler; when the scaler skips a step (inf/NaN gradients), the
        scheduler does not step either, so the schedule counts only real updates.
        """
        detached = loss.detach()
        if self.ctx.read_every <= 1:
            value = float(detached)
            if not math.isfinite(value):
                raise NonFiniteLossError(f"loss for optimiser '{optimizer_name}' became {value}; stopping (the last "
                                         "good checkpoint is kept)")
        else:
            value = detached
            self.ctx.unchecked.append((optimizer_name, detached))
        opt = self.optimizers[optimizer_name]
        scaler = self._scaler(optimizer_name) if self.ctx.precision == "fp16" else None
        stepped = True
        with torch.autocast(self.ctx.device.type, enabled=False):
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                before = scaler.get_scale()
                scaler.update()
                stepped = scaler.get_scale() >= before  # the scale backs off exactly when the step was skipped
            else:
                loss.backward()
                opt.step()
        sched = self.schedulers.get(optimizer_name)
        if sched is not None and stepped:
            sched.step()
        return value

    def adam(self, parameters, **extra) -> torch.optim.Adam:
        """Adam over ``parameters`` at the config's ``lr``, ``adam_beta1`` and ``adam_beta2`` (the vocabulary of
        :class:`zoo.TrainConfig`); ``extra``: Adam's other arguments (``eps``, ``weight_decay``, ``lr`` of a
        second optimiser)."""
        cfg = self.config
        return torch.optim.Adam(parameters, **{"lr": cfg.lr, "betas": (cfg.adam_beta1, cfg.adam_beta2), **extra})

    def stage_steps(self, stage: Stage) -> int:
        """How many updates ``stage`` gets in this run (its share of ``ctx.total_steps``)."""
        plan = stage_plan(tuple(self.stages), self.ctx.total_steps)
        return next((end - first for s, first, end in plan if s.name == stage.name), 0)

    def loggable(self, value: torch.Tensor) -> float | torch.Tensor:
        """A value for ``training_step`` to return: a float when the loop reads every step (a CPU), else the
        detached tensor, left on the device until the loop reads it (like :meth:`backward_step`'s result)."""
        return float(value.detach()) if self.ctx.read_every <= 1 else value.detach()

    def _scaler(self, optimizer_name: str):
        # float16 autocast needs loss scaling; one scaler per optimiser, so each is updated once a step
        scaler = self._scalers.get(optimizer_name)
        if scaler is None:
            scaler = self._scalers[optimizer_name] = torch.amp.GradScaler(self.ctx.device.type)
        return scaler

    # -- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "aux": self.aux.state_dict(),
            "scalers": {k: v.state_dict() for k, v in self._scalers.items()},  # an fp16 resume continues exactly
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.aux.load_state_dict(state.get("aux", {}))
        for k, v in state.get("optimizers", {}).items():
            if k in self.optimizers:
                self.optimizers[k].load_state_dict(v)
        for k, v in state.get("schedulers", {}).items():
            if k in self.schedulers:
                self.schedulers[k].load_state_dict(v)
        if self.ctx.precision == "fp16":
            for k, v in state.get("scalers", {}).items():
                if v:  # a disabled scaler's state is empty
                    self._scaler(k).load_state_dict(v)
