"""Held-out validation during training: the recipe's losses on fixed crops of images it never trains on.

A training loss mixes two things: what the model learnt, and which crops the recent batches happened to
hold. On a few hundred photographs the second moves a colorizer's loss by several per cent from one stretch
of steps to the next, and a training loss that keeps falling can also mean the model is memorising its
training set. The same held-out crops at every validation show neither effect, so ``val.jsonl`` answers
"is it still learning something that carries over" directly (BasicSR's ``val_freq`` plays the same part).

The crops are drawn once, from a fixed seed, in the training batch size; each validation runs under
``torch.no_grad()``, in eval mode and with a fixed seed for anything the recipe samples, then puts the RNG
state back, so validating never changes the weights a run ends with.

Each line also carries the recipe's reference losses (``Recipe.reference_losses``: the same losses for an
answer that needs no training, such as ab = 0 or bicubic) on the same crops, so a held-out loss can be read as
a share of what an untrained answer scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo.data import loader
from zoo.errors import ZooError
from zoo.runtime import rngstate
from zoo.store import runs

VAL_CROPS = 256  # held-out crops per validation
VAL_SEED = 104729  # crops and sampled noise: the same at every validation, whatever the run's seed
VALIDATIONS_PER_RUN = 20  # the default spacing: steps // this
# part of a run's key: bump when the crops or the lines of a validation change
# (2: no greyscale files; 3: lines carry the recipe's reference losses)
FORMAT = 3


def spacing(val_every: int | None, steps: int) -> int:
    """Steps between validations: ``val_every``, or 20 times a run when it is 0 or None."""
    return int(val_every or 0) or max(1, steps // VALIDATIONS_PER_RUN)


class Validator:
    """Validates a run every ``every`` steps and at its last step, appending one line per validation to
    ``path`` (``{"step", "stage", <loss>: mean over the crops}``)."""

    def __init__(self, dataset, every: int, path: Path, *, task: str, patch_size: int, scale: int,
                 batch_size: int, total_steps: int):
        if every < 1:
            raise ZooError(f"validation every must be at least 1 step, got {every}")
        self.dataset, self.every, self.path, self.total = dataset, int(every), Path(path), int(total_steps)
        self.crops = dict(task=task, patch_size=patch_size, scale=scale, batch_size=batch_size)
        self._batches: list[dict[str, torch.Tensor]] | None = None
        self._references: dict[str, dict[str, float]] = {}  # by stage: the crops are fixed, so once a stage
        self.enabled = True

    def describe(self) -> dict[str, Any]:
        """What ``model.json`` records about the validation."""
        name = str(getattr(self.dataset, "name", ""))
        return {"data": self.dataset.fingerprint(), "name": Path(name).name or name,  # no path of this machine
                "every": self.every, "crops": VAL_CROPS, "seed": VAL_SEED, "format": FORMAT}

    def resume_at(self, step: int) -> None:
        """Drop the lines after ``step`` (a resumed run redoes them)."""
        runs.truncate_log(self.path, step)

    def due(self, step: int) -> bool:
        return self.enabled and (step % self.every == 0 or step == self.total)

    def batches(self) -> list[dict[str, torch.Tensor]]:
        """The held-out crops (on the CPU), drawn on first use; the RNG state is put back (a DataLoader draws
        its base seed from torch's global generator), so drawing them changes nothing in training."""
        if self._batches is None:
            rng = rngstate.capture(torch.device("cpu"))
            try:
                steps = math.ceil(VAL_CROPS / self.crops["batch_size"])
                # a colorizer's held-out loss on a greyscale file would only punish colour (evaluation skips them)
                stream = loader.make_train_loader(self.dataset, seed=VAL_SEED, workers=0, steps=steps, uint8=True,
                                                  skip_grey=self.crops["task"] == "colorizer", **self.crops)
                self._batches = list(stream)
            finally:
                rngstate.restore(rng, torch.device("cpu"))
        return self._batches

    def run(self, recipe, stage, step: int, to_device: Callable[[dict], dict]) -> dict[str, float] | None:
        """Validate now; the losses written, or None when the recipe has no validation losses (then it stops)."""
        model = recipe.model
        was_training = model.training
        try:
            model.eval()
            losses = self._mean(lambda batch: recipe.validation_losses(batch, stage), recipe.ctx.device, to_device)
        finally:
            model.train(was_training)
        if losses is None:
            self.enabled = False
            recipe.ctx.note("validation: this recipe has no validation losses; none were logged")
            return None
        row = {"step": step, "stage": stage.name, **losses}
        if stage.name not in self._references:  # the crops are fixed: once a stage
            self._references[stage.name] = self._mean(lambda batch: recipe.reference_losses(batch, stage),
                                                      recipe.ctx.device, to_device) or {}
        if self._references[stage.name]:
            row[runs.VAL_REFERENCE] = self._references[stage.name]
        with open(self.path, "a") as f:  # a kill mid-line leaves a torn last line, which readers drop
            f.write(json.dumps(row) + "\n")
        return row

    def _mean(self, losses_of: Callable[[dict], dict | None], device, to_device) -> dict[str, float] | None:
        """``losses_of(batch)`` averaged over the held-out crops (None when it returns None), under no_grad,
        with a fixed seed for anything it samples and the RNG state put back afterwards."""
        rng = rngstate.capture(device)
        sums: dict[str, torch.Tensor] = {}  # kept on the device: one read at the end, not one per batch
        seen = 0
        try:
            torch.manual_seed(VAL_SEED)
            with torch.no_grad():
                for cpu_batch in self.batches():
                    batch = to_device(cpu_batch)
                    losses = losses_of(batch)
                    if losses is None:
                        return None
                    n = next(iter(batch.values())).shape[0]
                    for name, value in losses.items():
                        sums[name] = sums.get(name, 0.0) + torch.as_tensor(value).detach().double() * n
                    seen += n
        finally:
            rngstate.restore(rng, device)
        return {k: float(v) / seen for k, v in sums.items()}
