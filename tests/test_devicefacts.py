"""Hardware decisions as functions of given device facts, and RNG state across a change of visible GPUs.

No GPU is needed: the facts are given, and the CUDA calls are replaced by recorders.
"""

from __future__ import annotations

import pytest
import torch

from zoo.errors import ZooError
from zoo.runtime import devicefacts as df
from zoo.runtime import rngstate
from zoo.runtime.devicefacts import DeviceFacts, NodeFacts

V100, T4, A100, H100 = (7, 0), (7, 5), (8, 0), (9, 0)


# -- precision --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("capability, expected", [(V100, "fp16"), (T4, "fp16"), ((8, 6), "bf16"), (A100, "bf16"),
                                                  (H100, "bf16")])
def test_auto_precision_follows_the_compute_capability(capability, expected):
    assert df.choose_precision("auto", DeviceFacts("cuda", 0, capability)) == expected


def test_precision_on_a_cpu_and_explicit_choices():
    cpu = DeviceFacts("cpu")
    assert df.choose_precision("auto", cpu) == "fp32" and df.choose_precision("bf16", cpu) == "bf16"
    with pytest.raises(ZooError, match="fp16 needs a CUDA device"):
        df.choose_precision("fp16", cpu)
    with pytest.raises(ZooError, match="precision must be one of"):
        df.choose_precision("fp8", cpu)
    assert df.choose_precision("fp32", DeviceFacts("cuda", 0, A100)) == "fp32"
    # an explicit bf16 is honoured, with a note, where it is emulated
    assert df.choose_precision("bf16", DeviceFacts("cuda", 0, T4)) == "bf16"
    assert "emulated" in df.precision_warning("bf16", DeviceFacts("cuda", 0, T4))
    assert df.precision_warning("bf16", DeviceFacts("cuda", 0, A100)) is None


def test_resolve_precision_asks_about_the_device_given_not_the_current_one(monkeypatch):
    from zoo.training.loop import resolve_precision

    capabilities = {0: V100, 1: A100}  # the current device (0) has no bf16 units; cuda:1 has them
    asked = []

    def capability(device=None):
        index = torch.device(device).index if device is not None else 0
        asked.append(index)
        return capabilities[0 if index is None else index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "fake")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_precision("auto", torch.device("cuda", 1)) == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    assert asked == [1, 0]


# -- loader and loop ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("facts, workers, pin", [
    (DeviceFacts("cpu", cpus=2), 0, False),  # this machine: in-process loading is faster
    (DeviceFacts("cpu", cpus=16), 2, False),
    (DeviceFacts("cuda", 0, A100, cpus=2, gpus=1), 1, True),
    (DeviceFacts("cuda", 0, A100, cpus=64, gpus=8), 7, True),  # 8 cores per GPU, one for the training process
    (DeviceFacts("cuda", 0, A100, cpus=96, gpus=1), df.MAX_WORKERS, True),
    (DeviceFacts("cuda", 0, A100, cpus=8, gpus=8), 1, True),
])
def test_loader_workers_from_cores_per_gpu_and_pinning_only_for_cuda(facts, workers, pin):
    plan = df.loader_plan(facts)
    assert (plan.workers, plan.pin_memory) == (workers, pin)
    assert df.loader_plan(facts, workers=3).workers == 3  # an explicit count wins


def test_decoded_image_cache_grows_with_free_memory_on_cuda():
    assert df.loader_plan(DeviceFacts("cpu", cpus=2, memory_mb=512_000)).cache_mb == df.CPU_CACHE_MB
    big = DeviceFacts("cuda", 0, A100, cpus=64, gpus=8, memory_mb=128_000)
    assert df.loader_plan(big).cache_mb == 4_000  # a quarter of free memory, per GPU
    assert df.loader_plan(DeviceFacts("cuda", 0, A100, cpus=8, gpus=1, memory_mb=None)).cache_mb == df.CPU_CACHE_MB
    assert df.loader_plan(DeviceFacts("cuda", 0, A100, cpus=8, gpus=1, memory_mb=10**7)).cache_mb == df.MAX_CACHE_MB


def test_losses_are_read_every_step_on_a_cpu_only():
    assert df.read_every(DeviceFacts("cpu")) == 1
    assert df.read_every(DeviceFacts("cuda", 0, A100)) == df.CUDA_READ_EVERY > 1


def test_gather_reads_this_machine():
    facts = df.gather(torch.device("cpu"))
    assert facts.type == "cpu" and facts.cpus >= 1 and facts.capability is None


# -- Ray ------------------------------------------------------------------------------------------------------

GPU_NODES = [NodeFacts(64, 8), NodeFacts(64, 8)]


def test_ray_defaults_on_a_gpu_cluster():
    plan = df.ray_plan(GPU_NODES)
    assert (plan.device, plan.train_gpus, plan.workers, plan.train_cpus) == ("cuda", 1.0, 7, 8)
    assert plan.eval_gpus == 0.5 and plan.eval_cpus == 1 and plan.eval_group == df.EVAL_GROUP


def test_ray_on_cpus_keeps_one_cpu_one_thread_and_no_loader_process():
    plan = df.ray_plan([NodeFacts(2)])
    assert (plan.device, plan.train_gpus, plan.train_cpus, plan.workers, plan.train_threads) == ("cpu", 0, 1, 0, 1)
    assert plan.eval_gpus == 0
    assert df.ray_plan([NodeFacts(8)], workers=2).train_cpus == 3  # loader processes are reserved


def test_ray_strips_device_indices_inside_tasks():
    plan = df.ray_plan(GPU_NODES, device="cuda:3")
    assert plan.device == "cuda" and "cuda:3" in plan.notes[0]
    assert df.task_device("cuda:1", 1) == ("cuda", df.task_device("cuda:1", 1)[1])
    assert df.task_device(None, 1) == ("cuda", None) and df.task_device(None, 0) == ("cpu", None)
    assert df.task_device("cpu", 0) == ("cpu", None)


@pytest.mark.parametrize("kwargs, nodes, message", [
    ({"gpus_per_job": 2}, GPU_NODES, "runs on one GPU"),
    ({"gpus_per_job": 1}, [NodeFacts(8)], "no node of the Ray cluster has a GPU"),
    ({"gpus_per_job": -1}, GPU_NODES, "0 or more"),
    ({"device": "cuda"}, [NodeFacts(8)], "would have no GPU"),
    ({"device": "cpu", "gpus_per_job": 1}, GPU_NODES, "GPUs they never use"),
    ({"workers": 80}, GPU_NODES, "81 CPUs"),
    ({"device": "mps"}, GPU_NODES, "cpu or cuda"),
])
def test_ray_rejects_settings_it_cannot_honour(kwargs, nodes, message):
    with pytest.raises(ZooError, match=message):
        df.ray_plan(nodes, **kwargs)


def test_ray_fractional_gpus_and_cpu_only_on_a_gpu_cluster():
    half = df.ray_plan(GPU_NODES, gpus_per_job=0.5)
    assert (half.train_gpus, half.train_cpus, half.eval_gpus) == (0.5, 4, 0.5)
    cpu = df.ray_plan(GPU_NODES, device="cpu")
    assert (cpu.device, cpu.train_gpus, cpu.eval_gpus) == ("cpu", 0, 0)


def test_evaluations_are_grouped_by_test_set_and_scale():
    from types import SimpleNamespace

    from zoo.harness.executors import _groups

    jobs = [SimpleNamespace(test=t, scale=s, n=i) for i, (t, s) in enumerate([("a", 2)] * 10 + [("b", 2), ("a", 4)])]
    groups = _groups(jobs, 8)
    assert [len(g) for g in groups] == [8, 2, 1, 1]
    assert all(len({(j.test, j.scale) for j in g}) == 1 for g in groups)
    assert sorted(j.n for g in groups for j in g) == list(range(12))


# -- RNG state of the device in use ---------------------------------------------------------------------------

class FakeCuda:
    """Records what the RNG helpers ask of torch.cuda, for ``visible`` devices; there is no
    ``get_rng_state_all`` / ``set_rng_state_all``, so a helper that touches every device fails."""

    def __init__(self, visible: int, current: int = 0):
        self.visible, self.current = visible, current
        self.calls: list[tuple] = []
        self.states = {i: torch.tensor([i, 100 + i], dtype=torch.uint8) for i in range(visible)}

    def current_device(self):
        return self.current

    def _check(self, index):
        if not 0 <= index < self.visible:
            raise RuntimeError(f"invalid device ordinal {index} ({self.visible} visible)")

    def get_rng_state(self, index):
        self._check(index)
        self.calls.append(("get", index))
        return self.states[index].clone()

    def set_rng_state(self, state, index):
        self._check(index)
        self.calls.append(("set", index))
        self.states[index] = state.clone()


def test_rng_saved_with_eight_gpus_on_cuda_1_resumes_with_one_gpu_visible():
    eight = FakeCuda(visible=8)
    state = rngstate.capture(torch.device("cuda", 1), cuda=eight)
    assert eight.calls == [("get", 1)]  # only the device in use
    assert torch.equal(state["cuda"], torch.tensor([1, 101], dtype=torch.uint8)) and state["cuda_device"] == 1
    one = FakeCuda(visible=1)  # under Ray: the task sees its own GPU only, as cuda:0
    rngstate.restore(state, torch.device("cuda"), cuda=one)
    assert one.calls == [("set", 0)] and torch.equal(one.states[0], state["cuda"])


def test_rng_on_cuda_1_restores_cuda_1_and_the_cpu_generator():
    cuda = FakeCuda(visible=2)
    torch.manual_seed(5)
    state = rngstate.capture(torch.device("cuda", 1), cuda=cuda)
    expected = torch.rand(3)
    cuda.states[1] = torch.tensor([9, 9], dtype=torch.uint8)  # the run moved on
    rngstate.restore(state, torch.device("cuda", 1), cuda=cuda)
    assert cuda.calls[-1] == ("set", 1) and torch.equal(cuda.states[1], torch.tensor([1, 101], dtype=torch.uint8))
    assert torch.equal(cuda.states[0], torch.tensor([0, 100], dtype=torch.uint8))  # cuda:0 untouched
    assert torch.equal(torch.rand(3), expected)


def test_rng_of_old_checkpoints_with_every_gpu_restores_one_and_cpu_runs_touch_no_gpu():
    legacy = {"torch": torch.get_rng_state(), "cuda": [torch.tensor([i, i], dtype=torch.uint8) for i in range(8)]}
    one = FakeCuda(visible=1)
    rngstate.restore(legacy, torch.device("cuda"), cuda=one)
    assert one.calls == [("set", 0)]
    cpu_state = rngstate.capture(torch.device("cpu"), cuda=one)
    rngstate.restore(cpu_state, torch.device("cpu"), cuda=one)
    assert set(cpu_state) == {"torch"} and one.calls == [("set", 0)]
    rngstate.restore({"torch": torch.get_rng_state(), "cuda": []}, torch.device("cuda"), cuda=one)  # saved on a CPU
    assert one.calls == [("set", 0)]
