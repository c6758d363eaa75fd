"""The losses of a training run: read from the device every few steps, written to ``log.jsonl`` at checkpoints.

Reading a loss that lives on a GPU waits for every queued kernel (a host synchronisation), so the loop keeps
the step's losses as device tensors and reads those of ``read_every`` steps in one transfer. With a deferred
read the non-finite guard moves here too: :meth:`StepLog.read` raises :class:`~zoo.plugins.recipe.NonFiniteLossError`
naming the first step whose loss was not finite, and the loop reads before every checkpoint, so the last
checkpoint written is always a good one.

Lines are buffered in memory and appended to the file in one write at each checkpoint (:meth:`flush`): on
shared storage, a file opened per step is a round trip per step. A crash loses the lines after the last
checkpoint, which a resume recomputes anyway.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from zoo.plugins.recipe import NonFiniteLossError


class StepLog:
    def __init__(self, path: Path, read_every: int = 1):
        self.path, self.read_every = Path(path), max(1, int(read_every))
        self._pending: list[tuple[int, str, dict[str, Any], list[tuple[str, Any]]]] = []
        self._lines: list[str] = []
        self.latest: dict[str, Any] = {}  # the values of the last step read (for the progress bar)

    def add(self, step: int, stage: str, logs: dict[str, Any], guarded=()) -> bool:
        """Record one step's logs and its unchecked losses (``(optimiser, loss)``); True when read now."""
        # detached at once: a tensor that still holds its graph would keep the step's activations alive
        logs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in logs.items()}
        self._pending.append((step, stage, logs, list(guarded)))
        if len(self._pending) >= self.read_every:
            self.read()
            return True
        return False

    def read(self) -> None:
        """Read the pending values in one transfer, check the guarded losses, make the log lines."""
        pending, self._pending = self._pending, []
        tensors = [v for _, _, logs, guarded in pending
                   for v in [*logs.values(), *(loss for _, loss in guarded)] if isinstance(v, torch.Tensor)]
        values = iter(_floats(tensors))

        def value(v):
            return next(values) if isinstance(v, torch.Tensor) else v

        for step, stage, logs, guarded in pending:
            row = {k: value(v) for k, v in logs.items()}
            for name, loss in guarded:
                checked = value(loss)
                if not math.isfinite(checked):
                    raise NonFiniteLossError(f"loss for optimiser '{name}' became {checked} at step {step}; "
                                             "stopping (the last good checkpoint is kept)")
            self._lines.append(json.dumps({"step": step, "stage": stage, **row}))
            self.latest = row

    def flush(self) -> None:
        """Read what is pending and append every buffered line to the file (call before each checkpoint)."""
        self.read()
        if self._lines:
            with open(self.path, "a") as f:
                f.write("".join(line + "\n" for line in self._lines))
            self._lines = []


def _floats(tensors: list[torch.Tensor]) -> list[float]:
    if not tensors:
        return []
    scalars = [t.detach().reshape(()).float() for t in tensors]
    if len({t.device for t in scalars}) == 1:
        return torch.stack(scalars).tolist()  # one copy to the host, one synchronisation
    return [float(t) for t in scalars]
