"""The random state a training checkpoint saves: the CPU generator and the generator of the device in use.

Only the device the run trains on is saved and restored, never every visible GPU: a run checkpointed with
eight GPUs visible resumes with one (as inside a Ray task), and a run on ``cuda:1`` restores ``cuda:1``'s
generator, not ``cuda:0``'s. The state is tied to the role ("the training device"), not to an index, so a
run resumed on another GPU continues the same random stream there.

``cuda`` is ``torch.cuda`` unless a test passes a recorder with the same four functions.
"""

from __future__ import annotations

from typing import Any

import torch


def _index(device: torch.device, cuda) -> int:
    return device.index if device.index is not None else cuda.current_device()


def capture(device: torch.device, cuda=None) -> dict[str, Any]:
    """The CPU generator's state, and on CUDA the state of ``device``'s generator."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        cuda = cuda or torch.cuda
        index = _index(device, cuda)
        state["cuda"] = cuda.get_rng_state(index)
        state["cuda_device"] = index  # informational: where it was taken
    return state


def restore(state: dict[str, Any], device: torch.device, cuda=None) -> None:
    """Put ``state`` back: the CPU generator, and the saved device generator into ``device``'s."""
    torch.set_rng_state(state["torch"])
    saved = state.get("cuda")
    if device.type != "cuda" or saved is None or (isinstance(saved, (list, tuple)) and not saved):
        return
    cuda = cuda or torch.cuda
    index = _index(device, cuda)
    if isinstance(saved, (list, tuple)):
        # checkpoints from before: every visible GPU's state, the run's device unrecorded; the run trained on
        # the device it was given, almost always the first
        saved = saved[index] if index < len(saved) else saved[0]
    cuda.set_rng_state(saved, index)
