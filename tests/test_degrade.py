"""zoo.data.degrade: modcrop anchoring and the (HR, LR, LR-L) triple."""

import pytest
import torch

from zoo.data.color import rgb_to_lab
from zoo.data.degrade import Triple, make_triple, modcrop
from zoo.data.resize import imresize


def test_modcrop_is_top_left_anchored():
    x = torch.arange(2 * 3 * 13 * 10, dtype=torch.float32).reshape(2, 3, 13, 10)
    y = modcrop(x, 4)
    assert y.shape == (2, 3, 12, 8)
    assert torch.equal(y, x[..., :12, :8])
    assert modcrop(x, 1) is x or torch.equal(modcrop(x, 1), x)
    assert modcrop(x[0, 0], 3).shape == (12, 9)  # any leading dims
    assert torch.equal(modcrop(x, 5), x[..., :10, :10])
    with pytest.raises(ValueError):
        modcrop(x, 0)
    with pytest.raises(ValueError):
        modcrop(x, 2.5)


def test_make_triple_shapes_values_and_grid():
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (2, 3, 27, 34), generator=g).float() / 255
    t = make_triple(hr, 3)
    assert isinstance(t, Triple)
    assert t.hr.shape == (2, 3, 27, 33) and torch.equal(t.hr, hr[..., :27, :33])
    assert t.lr.shape == (2, 3, 9, 11) and t.lr_l.shape == (2, 1, 9, 11)
    assert t.scale == 3
    assert torch.equal(torch.round(t.lr * 255) / 255, t.lr)  # uint8 grid
    assert torch.equal(t.lr, imresize(t.hr, 1 / 3, quantize=True))
    assert torch.allclose(t.lr_l, rgb_to_lab(t.lr)[:, :1])
    assert t.lr_l.min() >= 0 and t.lr_l.max() <= 100


def test_make_triple_of_grey_input_and_errors():
    hr = torch.rand(1, 1, 16, 16)
    t = make_triple(hr, 2)
    assert t.hr.shape == (1, 3, 16, 16)
    assert torch.equal(t.lr[:, 0], t.lr[:, 1]) and torch.equal(t.lr[:, 1], t.lr[:, 2])
    with pytest.raises(ValueError):
        make_triple(torch.rand(3, 16, 16), 2)  # unbatched
    with pytest.raises(ValueError):
        make_triple(torch.rand(1, 2, 16, 16), 2)


def test_constant_hr_gives_constant_lr():
    hr = torch.full((1, 3, 24, 24), 100 / 255)
    t = make_triple(hr, 4)
    assert torch.equal(t.lr, torch.full((1, 3, 6, 6), 100 / 255))
