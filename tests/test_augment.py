import json

import pytest
import torch

from stackgan.augment import (
    AdaptiveAugment,
    make_augment,
    rand_cutout,
    rand_scale,
    rand_translation,
)
from stackgan.checkpoint import load_checkpoint
from stackgan.config import ConfigError, load_config
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


def test_scale_zooms_about_the_centre_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.zeros(32, 3, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a centred square
    x.requires_grad_(True)
    out = rand_scale(x, std=0.5)
    assert out.shape == x.shape
    areas = (out.detach()[:, 0] > 0.5).flatten(1).sum(1).float()
    assert areas.std() > 0 and torch.all(out.detach()[:, :, 7:9, 7:9] > 0.5)  # centre stays
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.allclose(rand_scale(x.detach(), std=0.0), x.detach(), atol=1e-5)


def test_ada_probability_follows_the_overfitting_signal():
    ada = AdaptiveAugment("translation", target=0.6, interval=2, kimg=1.0)
    x = torch.randn(8, 3, 16, 16)
    assert torch.equal(ada(x), x)  # p starts at 0: nothing is augmented
    for _ in range(4):  # D sure of every real image (r_t = 1 > 0.6): p rises
        ada.observe(torch.tensor(1.0), 100)
    # two adjustments of 200 images each at 1 per 1,000 images
    assert ada.p == pytest.approx(0.4) and ada.r_t == 1.0
    for _ in range(2):  # D unsure (r_t = 0.2 < 0.6): p falls
        ada.observe(torch.tensor(0.2), 100)
    assert ada.p == pytest.approx(0.2)
    for _ in range(40):
        ada.observe(torch.tensor(-1.0), 100)
    assert ada.p == 0.0  # clamped


def test_ada_applies_each_transform_with_probability_p():
    torch.manual_seed(0)
    ada = AdaptiveAugment("cutout", target=0.6, p=0.5)
    out = ada(torch.ones(400, 3, 8, 8))
    changed = (out != 1).flatten(1).any(1).float().mean()
    assert 0.4 < float(changed) < 0.6
    ada.p = 1.0
    assert (ada(torch.ones(50, 3, 8, 8)) != 1).flatten(1).any(1).all()


def test_ada_config_needs_transforms():
    with pytest.raises(ConfigError, match=r"needs loss\.augment"):
        load_config(None, ["loss.ada_target=0.6"])
    with pytest.raises(ConfigError, match="ada_target"):
        load_config(None, ["loss.augment=translation", "loss.ada_target=1.5"])


def test_train_with_ada_logs_p_and_resumes_it(tiny_shapes, tmp_path):
    over = {
        "loss.augment": "translation,scale",
        "loss.ada_target": 0.01,
        "loss.ada_interval": 1,
        "loss.ada_kimg": 0.01,
        "train.total_iters": 3,
    }
    train(tiny_config(tiny_shapes, **over), tmp_path / "run")
    rec = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["ada_p"] <= 1.0 for r in rec) and "ada_rt" in rec[-1]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    assert ckpt["ada_p"] == rec[-1]["ada_p"]
    # a resume continues from the saved probability, also from a checkpoint of the earlier
    # format (before issue 29), which kept it in an "extra" dict
    del ckpt["ada_p"]
    ckpt["extra"] = {"ada_p": 0.75}
    torch.save(ckpt, tmp_path / "run" / "checkpoint-latest.pt")
    more = tiny_config(tiny_shapes, **{**over, "train.total_iters": 4, "loss.ada_kimg": 1000.0})
    train(more, tmp_path / "run", resume=tmp_path / "run" / "checkpoint-latest.pt")
    last = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert abs(last["ada_p"] - 0.75) < 0.01
