"""Training recipes: what is model-specific about training, kept beside each architecture.

The zoo has one training loop (:mod:`zoo.training`). It owns data, device, seeding, mixed precision,
progress, checkpoints and resumption. A model's :class:`Recipe` owns the rest: its stages, optimisers,
schedules, auxiliary networks (discriminators, VGG feature extractors) and the losses of one step.

Batches the loop hands to ``training_step`` (all tensors on the training device, float32):
- colorizers: ``{"l": (B,1,H,W) in [0,100], "ab": (B,2,H,W) Lab units, "rgb": (B,3,H,W) in [0,1]}``
  (patches of the colour LR images);
- SR models: ``{"lr": (B,3,h,w), "hr": (B,3,h*scale,w*scale)}``, RGB in [0,1], the LR made from the HR
  patch by MATLAB-compatible bicubic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

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
    # only, with loss scaling). Resolved from the user's choice by ``zoo.training.resolve_precision``.
    precision: str = "fp32"
    # Facts a leaderboard must show, e.g. "vgg19 weights: missing -> content loss off".
    notes: list[str] = field(default_factory=list)

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


class Recipe:
    """Base class of a model's training recipe. Subclass it next to the architecture.

    Lifecycle, driven by the loop:
    1. ``recipe = RecipeClass(model, config, ctx)``;
    2. ``prepare(batches)`` once before the first step of a fresh run (e.g. a colour prior from data);
    3. for each stage: ``start_stage(stage)`` (build its optimisers), then ``training_step(batch, stage, step)``
       repeatedly, which returns float losses to log;
    4. ``state_dict()`` / ``load_state_dict()`` for checkpoints (optimisers, schedulers, auxiliary nets).
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
        # float16 autocast needs loss scaling; one scaler per optimiser, so each is updated once a step.
        self._scalers: dict[str, Any] = {}

    # -- hooks for subclasses ------------------------------------------------------------------------
    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Look at some training batches before training (default: nothing)."""

    def start_stage(self, stage: Stage) -> None:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], stage: Stage, step: int) -> dict[str, float]:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------------
    def autocast(self):
        """Mixed precision when the run asks for it (``ctx.precision``); a no-op in float32."""
        return torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype, enabled=self.ctx.amp)

    def backward_step(self, loss: torch.Tensor, optimizer_name: str, *,
                      params: Iterable[nn.Parameter] | None = None) -> float:
        """Check ``loss`` is finite, back-propagate, step the named optimiser (and its scheduler).

        Raises :class:`NonFiniteLossError` before touching any weight when the loss is not finite.
        """
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss for optimiser '{optimizer_name}' became {value}; stopping (the last good checkpoint is kept)")
        opt = self.optimizers[optimizer_name]
        opt.zero_grad(set_to_none=True)
        scaler = None
        if self.ctx.precision == "fp16":
            scaler = self._scalers.setdefault(optimizer_name, torch.amp.GradScaler("cuda"))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sched = self.schedulers.get(optimizer_name)
        if sched is not None:
            sched.step()
        return value

    # -- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "aux": self.aux.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.aux.load_state_dict(state.get("aux", {}))
        for k, v in state.get("optimizers", {}).items():
            if k in self.optimizers:
                self.optimizers[k].load_state_dict(v)
        for k, v in state.get("schedulers", {}).items():
            if k in self.schedulers:
                self.schedulers[k].load_state_dict(v)
