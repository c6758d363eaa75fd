"""Decisions that depend on the hardware, as pure functions of given device facts.

Every rule here takes the facts (compute capability, cores, GPUs, memory, a Ray cluster's nodes) as
arguments, so it is tested on a machine without a GPU; :func:`gather` is the only function that asks torch
and the OS. The training loop, the executors and the dry run all decide through these functions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from zoo.errors import ZooError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_CAPABILITY = (8, 0)  # Ampere: the first GPUs with bfloat16 tensor cores (V100 = 7.0, T4 = 7.5 emulate it)
MAX_WORKERS = 8  # loader processes per training: more rarely helps, and each holds a torch import and a cache
CPU_CACHE_MB = 256  # the decoded-image budget measured on CPU runs (see zoo.data.loader)
MAX_CACHE_MB = 8192
CUDA_READ_EVERY = 50  # steps between reads of the losses on an asynchronous device (one host sync each)
EVAL_GROUP = 8  # evaluations per Ray task: the metric networks are built once per task, not once per job


@dataclass(frozen=True)
class DeviceFacts:
    """What the decisions need to know about the training device and the machine around it."""

    type: str  # "cpu", "cuda", "mps"
    index: int | None = None
    capability: tuple[int, int] | None = None  # CUDA compute capability of this device (not the current one)
    name: str = ""
    cpus: int = 1  # cores this process may run on
    gpus: int = 0  # CUDA devices visible on this node
    memory_mb: int | None = None  # available host memory


def gather(device) -> DeviceFacts:
    """The facts of ``device`` (a torch.device) on this machine."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    facts = {"type": device.type, "index": device.index, "cpus": cpus, "memory_mb": _available_memory_mb()}
    if device.type == "cuda":
        facts["gpus"] = torch.cuda.device_count()
        facts["capability"] = tuple(torch.cuda.get_device_capability(device))
        facts["name"] = torch.cuda.get_device_name(device)
    return DeviceFacts(**facts)


def _available_memory_mb() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


# -- precision ----------------------------------------------------------------------------------------------

def choose_precision(requested: str, facts: DeviceFacts) -> str:
    """What ``requested`` means on the device: "fp32", "bf16" or "fp16".

    ``auto``: on CUDA, bfloat16 where the device has bfloat16 units (compute capability >= 8.0), else float16
    with loss scaling (``torch.cuda.is_bf16_supported()`` also counts emulation, which is slow); float32
    elsewhere (on a CPU bfloat16 pays only with AMX / AVX512-BF16, so it is asked for explicitly).
    """
    if requested not in PRECISIONS:
        raise ZooError(f"precision must be one of {', '.join(PRECISIONS)}, got '{requested}'")
    cuda = facts.type == "cuda"
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if bf16_native(facts) else "fp16"
    if requested == "fp16" and not cuda:
        raise ZooError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    return requested


def bf16_native(facts: DeviceFacts) -> bool:
    return facts.capability is not None and tuple(facts.capability) >= BF16_CAPABILITY


def precision_warning(resolved: str, facts: DeviceFacts) -> str | None:
    """A note when an explicit bf16 will be emulated on this GPU."""
    if resolved == "bf16" and facts.type == "cuda" and not bf16_native(facts):
        cc = ".".join(map(str, facts.capability or ("?",)))
        return (f"bf16 on a GPU of compute capability {cc} is emulated (slow); --precision auto uses fp16 with "
                "loss scaling there")
    return None


# -- the training loader and the loop ------------------------------------------------------------------------

@dataclass(frozen=True)
class LoaderPlan:
    workers: int  # loader processes
    pin_memory: bool
    cache_mb: int  # decoded-image cache, in total over the workers


def loader_plan(facts: DeviceFacts, workers: int | None = None) -> LoaderPlan:
    """Loader settings for a training on the device.

    CPU: no loader process on 2 cores (measured: in-process loading with 2 compute threads beats 1 worker +
    1 thread), else 2. CUDA: the cores per GPU of the node, minus one for the training process, at most
    ``MAX_WORKERS``: a GPU step of the SR and U-Net presets takes milliseconds, faster than two processes
    decode JPEGs. Pinned memory only for CUDA (pinned pages are for asynchronous copies to a GPU).
    """
    if facts.type != "cuda":
        default, pin, cache = (0 if facts.cpus <= 2 else 2), False, CPU_CACHE_MB
    else:
        per_gpu = facts.cpus // max(1, facts.gpus)
        default, pin = min(max(per_gpu - 1, 1), MAX_WORKERS), True
        share = (facts.memory_mb or 0) // (4 * max(1, facts.gpus))  # a quarter of free memory, split per GPU
        cache = min(max(share, CPU_CACHE_MB), MAX_CACHE_MB)
    return LoaderPlan(default if workers is None else max(0, int(workers)), pin, cache)


def read_every(facts: DeviceFacts) -> int:
    """Steps between reads of the losses. On a CPU reading is free (nothing runs asynchronously); on a GPU each
    read waits for the queued kernels, so losses stay on the device and are read every ``CUDA_READ_EVERY``."""
    return 1 if facts.type == "cpu" else CUDA_READ_EVERY


# -- Ray ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeFacts:
    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class RayPlan:
    """Resources and settings of the bench's Ray tasks."""

    device: str  # inside a task: "cuda" or "cpu", never with an index
    train_gpus: float
    train_cpus: int  # the training process plus its loader processes
    workers: int
    train_threads: int
    eval_gpus: float
    eval_cpus: int
    eval_threads: int
    eval_group: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def task_device(device: str | None, gpus: float) -> tuple[str, str | None]:
    """The device a task uses, and a note when the given one had an index.

    A Ray task sees only the GPUs Ray assigned it (CUDA_VISIBLE_DEVICES), numbered from 0, so ``cuda:3``
    would fail or pick the wrong device inside it.
    """
    if device in (None, "", "auto"):
        return ("cuda" if gpus > 0 else "cpu"), None
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda"):
        raise ZooError(f"--device {device}: the ray executor runs on cpu or cuda")
    if kind == "cuda" and index:
        return "cuda", (f"--device {device}: a Ray task sees only the GPU Ray gives it (as cuda:0), so tasks use "
                        "'cuda'; choose GPUs with --gpus-per-job or the cluster's resources")
    return kind, None


def ray_plan(nodes: list[NodeFacts], *, gpus_per_job: float | None = None, device: str | None = None,
             workers: int | None = None) -> RayPlan:
    """What each task asks Ray for, or a ZooError for a setting the cluster cannot honour (a task that could
    never be scheduled waits forever)."""
    max_gpus = max((n.gpus for n in nodes), default=0.0)
    max_cpus = max((n.cpus for n in nodes), default=0.0)
    if gpus_per_job is None:
        requested_cpu = device is not None and device.partition(":")[0] == "cpu"
        gpus = 1.0 if max_gpus >= 1 and not requested_cpu else 0.0
    else:
        gpus = float(gpus_per_job)
    if gpus < 0 or math.isnan(gpus):
        raise ZooError(f"--gpus-per-job must be 0 or more, got {gpus_per_job}")
    if gpus > 1:
        raise ZooError(f"--gpus-per-job {gpus_per_job:g}: a zoo training job runs on one GPU, so the others would "
                       "sit idle; use 1, or a fraction such as 0.5 to share a GPU between two jobs")
    if gpus > max_gpus:
        raise ZooError(f"--gpus-per-job {gpus_per_job:g}: no node of the Ray cluster has "
                       f"{'a GPU' if max_gpus == 0 else f'{gpus:g} GPUs'}, so the tasks could never start")
    dev, note = task_device(device, gpus)
    if dev == "cuda" and gpus == 0:
        raise ZooError(f"--device {device}: the tasks would have no GPU (the cluster has none, or --gpus-per-job 0)")
    if dev == "cpu" and gpus > 0:
        raise ZooError(f"--device {device} with --gpus-per-job {gpus:g}: the tasks would hold GPUs they never use")
    notes = [note] if note else []
    if gpus > 0:
        gpu_nodes = [n for n in nodes if n.gpus >= gpus]
        per_gpu = min(n.cpus / n.gpus for n in gpu_nodes)
        fit = max(1, math.floor(per_gpu * gpus))  # this job's share of its node's cores
        n_workers = min(max(fit - 1, 1), MAX_WORKERS) if workers is None else int(workers)
        eval_gpus = min(gpus, 0.5)  # two evaluation tasks per GPU: they hold a model and the metric networks
        room = max(n.cpus for n in gpu_nodes)
    else:
        n_workers = 0 if workers is None else int(workers)  # CPU tasks: in-process loading, one thread each
        eval_gpus, room = 0.0, max_cpus
    train_cpus = 1 + n_workers
    if train_cpus > room:
        raise ZooError(f"a training task would ask for {train_cpus} CPUs (1 + {n_workers} loader processes), but "
                       f"the largest node that could run it has {room:g}; lower --workers")
    return RayPlan(device=dev, train_gpus=gpus, train_cpus=train_cpus, workers=n_workers, train_threads=1,
                   eval_gpus=eval_gpus, eval_cpus=1, eval_threads=1, eval_group=EVAL_GROUP, notes=tuple(notes))
