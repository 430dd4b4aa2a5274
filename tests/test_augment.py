import pytest
import torch

from stackgan.augment import make_augment, rand_cutout, rand_translation
from stackgan.config import ConfigError
from stackgan.train import train

from .conftest import tiny_config


def _dot(b=64, size=16, at=(8, 8)):
    x = torch.zeros(b, 3, size, size)
    x[:, :, at[0], at[1]] = 1.0
    return x


def test_translation_moves_each_image_within_the_ratio():
    torch.manual_seed(0)
    out = rand_translation(_dot(), ratio=0.125)  # up to 2 px at 16 px
    assert out.shape == (64, 3, 16, 16)
    shifts = set()
    for img in out:
        (ys, xs) = torch.nonzero(img[0], as_tuple=True)
        assert len(ys) == 1 and torch.equal(img[0], img[1])  # one pixel, same in every channel
        dy, dx = 8 - int(ys[0]), 8 - int(xs[0])
        assert abs(dy) <= 2 and abs(dx) <= 2
        shifts.add((dy, dx))
    assert len(shifts) > 5  # independent per sample


def test_translation_repeats_the_edge_and_passes_gradients():
    x = torch.full((4, 3, 16, 16), 0.3, requires_grad=True)
    out = rand_translation(x, ratio=0.25)
    assert torch.allclose(out, torch.full_like(out, 0.3))  # a plain image stays plain
    out.sum().backward()
    assert x.grad is not None and x.grad.sum() == out.numel()  # every output pixel has a source
    assert torch.equal(rand_translation(_dot(), ratio=0.0), _dot())


def test_cutout_zeroes_one_square_at_most_of_the_ratio():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 16, 16)
    out = rand_cutout(x, ratio=0.5)
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert (zeros <= 64).all() and (zeros > 0).all() and (zeros == 64).any()
    assert torch.equal(out[:, 0], out[:, 2])
    for img in out[:, 0]:  # the zeros form a rectangle
        ys, xs = torch.nonzero(img == 0, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert h * w == len(ys) and h <= 8 and w <= 8


def test_make_augment_policy():
    assert make_augment("") is None
    both = make_augment("translation, cutout")
    assert both is not None and both(torch.ones(2, 3, 8, 8)).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"unknown augmentation \['color'\]"):
        make_augment("translation,color")


def test_config_rejects_unknown_augmentation(tiny_shapes):
    with pytest.raises(ConfigError, match=r"loss\.augment.*'flip'"):
        tiny_config(tiny_shapes, **{"loss.augment": "flip"})


def test_train_with_augmentation(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes, **{"loss.augment": "translation,cutout", "train.total_iters": 2})
    assert train(cfg, tmp_path / "run").exists()
