"""``--deterministic``: the same numbers from the same inputs on CUDA, at some cost in speed.

On a CPU, zoo's runs are reproducible without it (same thread count, same build). On CUDA, by default
cuDNN benchmarks several convolution algorithms per shape and keeps the fastest (``cudnn.benchmark``),
and some kernels (atomic adds in backward passes, cuBLAS split reductions) sum in a varying order, so two
runs differ in the last bits and drift apart over training. With ``deterministic=True``:
``torch.use_deterministic_algorithms(True, warn_only=True)``, ``cudnn.deterministic = True``,
``cudnn.benchmark = False`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (which cuBLAS reads when it starts,
so it is set before the first CUDA matmul of the process). An operation with no deterministic CUDA kernel
(e.g. the backward of bilinear upsampling) warns and runs anyway: that run is then not bit-identical.
"""

from __future__ import annotations

import os

import torch


def configure(deterministic: bool, device: torch.device | str) -> None:
    """Set torch's global determinism flags for work on ``device`` (and undo them when False)."""
    cuda = torch.device(device).type == "cuda"
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
    torch.backends.cudnn.deterministic = bool(deterministic)
    # without it, let cuDNN time its algorithms: training shapes are fixed, so the choice pays every step
    torch.backends.cudnn.benchmark = cuda and not deterministic


def state() -> dict[str, bool]:
    """The flags now in force (for tests and model.json)."""
    return {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
