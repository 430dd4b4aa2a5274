"""v1 Stage-II as text-conditioned super-resolution on real pairs and crops
(stackgan.train.superres; train.sr_real_fraction, train.crop, loss.recon_weight)."""

import json

import pytest
import torch
import torch.nn.functional as F

from stackgan.config import ConfigError
from stackgan.models.v1 import Stage1Generator, Stage2Generator
from stackgan.train import train
from stackgan.train.superres import (
    degrade,
    gaussian_blur,
    random_crops,
    recon_loss,
    stage2_images,
)

from .conftest import tiny_config


def test_blur_keeps_flat_images_and_spreads_a_point():
    flat = torch.full((2, 3, 12, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.0, 2.0])), flat, atol=1e-6)
    point = torch.zeros(2, 1, 21, 21)  # the point far from the edges (reflect padding)
    point[:, :, 10, 10] = 1
    out = gaussian_blur(point, torch.tensor([0.0, 1.5]))
    assert torch.allclose(out[0], point[0], atol=1e-6)  # sigma 0: unchanged
    assert out[1, 0, 10, 10] < 0.2 and out[1, 0, 10, 12] > 0.01  # sigma 1.5: spread out
    assert torch.isclose(out[1].sum(), torch.tensor(1.0), atol=1e-4)  # and nothing lost


def test_degrade_takes_photos_to_the_low_size_in_range():
    gen = torch.Generator().manual_seed(0)
    hi = torch.rand(4, 3, 32, 32) * 2 - 1
    lo = degrade(hi, 8, blur=1.0, noise=0.1, gen=gen)
    assert lo.shape == (4, 3, 8, 8) and lo.min() >= -1 and lo.max() <= 1
    # without blur and noise it is plain area downsampling
    clean = degrade(hi, 8, blur=0, noise=0, gen=gen)
    assert torch.allclose(clean, F.interpolate(hi, size=8, mode="area"))
    assert (lo - clean).abs().mean() > 1e-3


def test_crops_of_the_two_sizes_show_the_same_place():
    gen = torch.Generator().manual_seed(1)
    hi = torch.rand(5, 3, 32, 32)
    lo = F.interpolate(hi, size=8, mode="area")
    lo_c, hi_c = random_crops(lo, hi, 16, gen)
    assert lo_c.shape == (5, 3, 4, 4) and hi_c.shape == (5, 3, 16, 16)
    assert torch.allclose(F.interpolate(hi_c, size=4, mode="area"), lo_c, atol=1e-6)


def test_recon_loss_counts_only_real_inputs():
    fake, target = torch.zeros(3, 3, 4, 4), torch.ones(3, 3, 4, 4)
    target[2] = 5  # not a real input: ignored
    assert recon_loss(fake, target, torch.tensor([True, True, False])) == pytest.approx(1.0)
    assert recon_loss(fake, target, torch.tensor([False, False, False])) == 0


def _stage2(skip=False):
    torch.manual_seed(0)
    s1 = Stage1Generator(text_dim=6, z_dim=4, cond_dim=3, ngf=4, img_size=16).eval()
    return Stage2Generator(s1, cond_dim=3, ngf=4, num_res_blocks=1, img_size=32, skip=skip).eval()


def test_stage2_refines_a_given_image_and_crops_of_it():
    g = _stage2()
    z, t, eps = torch.randn(2, 4), torch.randn(2, 6), torch.zeros(2, 3)
    whole = g(z, t, eps)
    # its own Stage-I image passed in: the same output
    again = g(z, t, eps, lo_img=whole.images[0])
    assert torch.allclose(again.images[-1], whole.images[-1], atol=1e-6)
    crop = g(z, t, eps, lo_img=whole.images[0][:, :, 4:12, 4:12])
    assert crop.images[-1].shape == (2, 3, 16, 16)


def test_stage2_images_mixes_real_and_stage1_inputs():
    g = _stage2(skip=True)
    gen = torch.Generator().manual_seed(0)
    z, t = torch.randn(8, 4), torch.randn(8, 6)
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    opts = {"blur": 0.0, "noise": 0.0, "crop": 0}
    batch = stage2_images(g, g.stage1, z, t, None, real, gen, real_fraction=1.0, **opts)
    assert bool(batch.is_real.all()) and batch.target is real
    # a fresh skip-mode Stage-II is its input upsampled: here the real photo, area-down and up
    lo = F.interpolate(real, size=16, mode="area")
    assert torch.allclose(batch.out.images[0], lo)
    eps = torch.zeros(8, 3)
    none = stage2_images(g, g.stage1, z, t, eps, real, gen, real_fraction=0.0, **opts)
    assert none.target is None and not bool(none.is_real.any())
    assert torch.allclose(none.out.images[0], g.stage1(z, t, eps).images[0], atol=1e-6)
    cropped = stage2_images(
        g, g.stage1, z, t, None, real, gen, real_fraction=0.5, blur=0.5, noise=0.02, crop=16
    )
    assert cropped.out.images[-1].shape == (8, 3, 16, 16) and cropped.real.shape == (8, 3, 16, 16)
    assert 0 < int(cropped.is_real.sum()) < 8


def test_stage2_pretrains_on_real_pairs_and_crops(tiny_shapes, tmp_path):
    s1 = train(tiny_config(tiny_shapes, **{"train.total_iters": 1}), tmp_path / "s1")
    sets = {
        "model.stage1_checkpoint": str(s1),
        "model.stage2_skip": True,
        "train.sr_real_fraction": 0.5,
        "train.crop": 16,
        "loss.recon_weight": 1.0,
        "loss.match_weight": 1.0,
        "loss.match_steps": 2,
        "train.total_iters": 2,
        "train.batch_size": 8,
    }
    export = train(tiny_config(tiny_shapes, stage=2, **sets), tmp_path / "s2")
    rec = json.loads((tmp_path / "s2" / "stats.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 2 and rec["recon"] > 0 and rec["d_real"] > 0
    assert export.exists()  # an export that samples whole images (test_stage2_refines_...)


def test_superres_options_are_checked(tiny_shapes):
    with pytest.raises(ConfigError, match="v1 Stage-II"):
        tiny_config(tiny_shapes, **{"train.crop": 16})  # a Stage-I config
    with pytest.raises(ConfigError, match="recon_weight needs"):
        tiny_config(tiny_shapes, stage=2, **{"loss.recon_weight": 1.0})
    for crop in (12, 64, 4):  # not a power of two; larger than the image; smaller than 8
        with pytest.raises(ConfigError, match=r"train\.crop"):
            tiny_config(tiny_shapes, stage=2, **{"train.crop": crop})
    with pytest.raises(ConfigError, match="sr_real_fraction"):
        tiny_config(tiny_shapes, stage=2, **{"train.sr_real_fraction": 1.5})
