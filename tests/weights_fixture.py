"""Random-init stand-ins for the pretrained weight files, so weight-dependent code runs offline in tests.

Each file has the EXACT architecture (same state-dict keys and shapes) of the real one and the real file
name, placed where torch looks for it: ``$TORCH_HOME/hub/checkpoints/<filename>``. The numbers are random
(seeded), so every result computed from them is meaningless as a score, and their sha256 never matches the
published prefix in the file name -- ``zoo.store.weights.check_weight`` reports MISMATCH for them, by design.

Use from conftest.py (tests/ is not a package; pytest puts tests/ on sys.path for conftest.py)::

    from weights_fixture import test_torch_home, test_weights_dir  # noqa: F401

``test_weights_dir`` (session) builds the files once; ``test_torch_home`` (per test) points ``$TORCH_HOME`` at
them for that test only. Or call :func:`make_test_weights` directly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

# filename as torch/torchvision/pytorch-fid name them in the hub cache (same as zoo.store.weights.*.filename)
FILENAMES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "fid_inception": "pt_inception-2015-12-05-6726825d.pth",
}


def _fid_inception_architecture() -> nn.Module:
    """pytorch_fid.inception.fid_inception_v3() without its load_state_dict_from_url (no download)."""
    import torchvision
    from pytorch_fid import inception as fi

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False, weights=None)
    net.Mixed_5b = fi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fi.FIDInceptionE_1(1280)
    net.Mixed_7c = fi.FIDInceptionE_2(2048)
    return net


def _architecture(key: str) -> nn.Module:
    import torchvision

    builders = {
        "alexnet": lambda: torchvision.models.alexnet(weights=None),
        "vgg16": lambda: torchvision.models.vgg16(weights=None),
        "vgg19": lambda: torchvision.models.vgg19(weights=None),
        "fid_inception": _fid_inception_architecture,
    }
    # On the meta device: shapes only, no (slow) default init of 100M+ parameters.
    with torch.device("meta"):
        return builders[key]()


def _he_uniform(shape, generator: torch.Generator) -> torch.Tensor:
    """fp16 He-uniform values (variance 2 / fan_in) from random int8 levels: ~2x faster than randn for the
    ~350M parameters of the four files."""
    n, fan_in = math.prod(shape), math.prod(shape[1:])
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-2 ** 63, None, generator=generator)
    levels = words.view(torch.int8)[:n]
    bound = math.sqrt(6.0 / fan_in)
    return levels.to(torch.half).mul_(bound / 128).reshape(shape)


def random_state_dict(module: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the module's exact keys/shapes: He-uniform conv/linear weights, zero biases,
    identity batch norms (weight 1, bias 0, running mean 0, var 1), all fp16 (int buffers stay int64).

    He init with identity batch norms keeps activations O(1) through deep ReLU nets, so features are neither
    vanishing nor exploding and distances between them behave.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for mod_name, mod in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        is_bn = isinstance(mod, nn.modules.batchnorm._BatchNorm)
        for name, p in mod.named_parameters(recurse=False):
            if is_bn:
                t = torch.ones(p.shape) if name == "weight" else torch.zeros(p.shape)
            elif name == "weight" and p.dim() >= 2:
                t = _he_uniform(tuple(p.shape), g)
            else:
                t = torch.zeros(p.shape)
            out[prefix + name] = t.half()
        for name, b in mod.named_buffers(recurse=False):
            if name == "running_var":
                out[prefix + name] = torch.ones(b.shape).half()
            elif name == "running_mean":
                out[prefix + name] = torch.zeros(b.shape).half()
            elif name == "num_batches_tracked":
                out[prefix + name] = torch.zeros((), dtype=torch.long)
            else:  # no other buffers in these nets; keep the shape anyway
                out[prefix + name] = torch.zeros(b.shape, dtype=b.dtype if not b.is_floating_point() else torch.half)
    expected = set(module.state_dict().keys())
    assert set(out) == expected, sorted(set(out) ^ expected)
    return out


def make_test_weights(torch_home: Path, *, seed: int = 0, which=None, overwrite: bool = False) -> dict[str, Path]:
    """Write random weight files for ``which`` (default: alexnet, vgg16, vgg19, fid_inception) into
    ``torch_home/hub/checkpoints``; returns key -> path. Existing files are kept unless ``overwrite``.

    Takes ~3-4 s for all four on an idle 2-core machine (about 750 MB on disk, fp16).
    """
    ckpt = Path(torch_home) / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for i, key in enumerate(which or tuple(FILENAMES)):
        path = ckpt / FILENAMES[key]
        paths[key] = path
        if path.is_file() and not overwrite:
            continue
        state = random_state_dict(_architecture(key), seed=seed * 1000 + i)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, path)
    return paths


@pytest.fixture(scope="session")
def test_weights_dir(tmp_path_factory) -> Path:
    """A TORCH_HOME directory holding random-init weight files of every built-in kind, built once per session
    (in a fixed place inside the session's base temp dir, so several importers share one set of files).
    Does not touch the environment: use :func:`test_torch_home` to point ``$TORCH_HOME`` at it."""
    home = tmp_path_factory.getbasetemp() / "zoo_test_torch_home"
    make_test_weights(home)
    return home


@pytest.fixture
def test_torch_home(test_weights_dir, monkeypatch) -> Path:
    """``$TORCH_HOME`` -> :func:`test_weights_dir` for one test (restored afterwards), so tests that did not
    ask for weights keep seeing none."""
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a torch.hub.set_dir() elsewhere would win over the env
    monkeypatch.setenv("TORCH_HOME", str(test_weights_dir))
    return test_weights_dir
