"""StackGAN++ (v2): tree generator, per-size discriminators, GLU, colour consistency, losses."""

import pytest
import torch

from stackgan.config import ConfigError
from stackgan.config_checks import image_sizes
from stackgan.losses import (
    color_consistency,
    generator_adv_loss,
    lowres_consistency,
    mean_covariance,
    unconditional_discriminator_loss,
)
from stackgan.models import Discriminator, TreeGenerator
from stackgan.models.layers import GLU, JointHead, ResBlock, UpBlock
from stackgan.models.registry import build_discriminators, build_generator
from stackgan.train.ema import update_ema
from stackgan.train.steps import d_step, g_step

from .conftest import tiny_config

torch.manual_seed(0)


def test_glu_gates_half_the_channels():
    x = torch.randn(2, 6, 3, 3)
    y = GLU()(x)
    assert y.shape == (2, 3, 3, 3)
    assert torch.allclose(y, x[:, :3] * torch.sigmoid(x[:, 3:]))
    with pytest.raises(ValueError, match="even"):
        GLU()(torch.randn(1, 3, 2, 2))
    assert UpBlock(8, 4, glu=True)(torch.randn(2, 8, 4, 4)).shape == (2, 4, 8, 8)
    assert ResBlock(4, glu=True)(torch.randn(2, 4, 8, 8)).shape == (2, 4, 8, 8)


@pytest.mark.parametrize("branches", [1, 2, 3, 4])
@pytest.mark.parametrize("text_dim", [16, 0])
def test_tree_generator_output_shapes(branches, text_dim):
    g = TreeGenerator(text_dim, z_dim=8, cond_dim=8, ngf=16, num_branches=branches, base_size=16)
    text = torch.randn(3, text_dim) if text_dim else None
    out = g(torch.randn(3, 8), text)
    assert [im.shape for im in out.images] == [
        (3, 3, 16 * 2**i, 16 * 2**i) for i in range(branches)
    ]
    assert all(im.abs().max() <= 1 for im in out.images)  # tanh heads
    assert len(out.mus) == (1 if text_dim else 0)
    assert g.num_stages == branches and g.conditional == bool(text_dim)


def test_tree_generator_channel_plan_matches_the_reference():
    # ngf = 64 at 64 px: fc -> 4x4x1024 (G_NET's gf_dim * 16), branches end at 64, 32, 16.
    g = TreeGenerator(32, ngf=64, num_branches=3, base_size=64)
    assert g.base_ch == 1024
    assert [h[0].in_channels for h in g.heads] == [64, 32, 16]
    assert g.ca is not None and g.ca.fc.out_features == 4 * 128  # fc + GLU conditioning
    assert len(g.branches[1]) == 2 + 1  # two residual blocks, then the upsampling


def test_tree_generator_checks_inputs():
    g = TreeGenerator(16, z_dim=8, cond_dim=8, ngf=8, num_branches=2, base_size=16)
    with pytest.raises(ValueError, match="z must be"):
        g(torch.randn(2, 9), torch.randn(2, 16))
    with pytest.raises(ValueError, match="text_emb"):
        g(torch.randn(2, 8))
    with pytest.raises(ValueError, match="num_branches"):
        TreeGenerator(16, num_branches=5)


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_one_discriminator_class_for_every_size(size):
    d = Discriminator(size, 16, ndf=4, disc_text_dim=8, uncond=True, joint_kernel=3)
    code = d.encode(torch.randn(2, 3, size, size))
    # ndf * 2^(downs - 1) channels at 4x4, brought back to ndf*8 where that is exceeded
    assert code.shape == (2, 4 * min(8, size // 8), 4, 4)
    assert d.cond_logits(code, torch.randn(2, 16)).shape == (2,)
    assert d.uncond_logits(code).shape == (2,)
    d_u = Discriminator(size, 0, ndf=4)  # unconditional mode: the realism head only
    assert not d_u.conditional and d_u(torch.randn(2, 3, size, size)).shape == (2,)
    with pytest.raises(ValueError, match="unconditional"):
        d_u.cond_logits(code, torch.randn(2, 16))


def test_registry_builds_one_discriminator_per_branch(tiny_shapes):
    cfg = tiny_config(tiny_shapes, **{"model.version": "v2", "model.num_branches": 3})
    assert image_sizes(cfg) == [16, 32, 64]
    ds = build_discriminators(cfg)
    assert [d.img_size for d in ds] == [16, 32, 64]
    assert all(d.conditional and d.uncond_head is not None for d in ds)
    assert isinstance(build_generator(cfg), TreeGenerator)
    with pytest.raises(ConfigError, match="num_branches"):
        tiny_config(tiny_shapes, **{"model.version": "v2", "model.num_branches": 5})
    with pytest.raises(ConfigError, match="needs version v2"):
        tiny_config(tiny_shapes, **{"model.conditional": False})


def test_color_consistency_zero_for_identical_and_positive_otherwise():
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    small = torch.nn.functional.avg_pool2d(img, 2)
    same, _ = color_consistency(img, img)
    assert float(same) == pytest.approx(0.0, abs=1e-10)
    _, terms = color_consistency(img + 0.2, img)
    assert float(terms["cc_mean"]) == pytest.approx(0.04, rel=1e-4)
    assert float(terms["cc_cov"]) == pytest.approx(0.0, abs=1e-10)  # a shift keeps covariance
    _, terms = color_consistency(img * 0.5, img)
    assert float(terms["cc_cov"]) > 0
    # weights: lambda_1 on the mean, 5 * lambda_1 on the covariance
    loss, t = color_consistency(img * 0.5 + 0.1, small, weight=2.0)
    assert float(loss) == pytest.approx(2.0 * (float(t["cc_mean"]) + 5 * float(t["cc_cov"])))


def test_color_consistency_detaches_the_coarse_scale():
    fine = torch.rand(2, 3, 8, 8, requires_grad=True)
    coarse = torch.rand(2, 3, 4, 4, requires_grad=True)
    loss, _ = color_consistency(fine, coarse)
    loss.backward()
    assert fine.grad is not None and fine.grad.abs().sum() > 0
    assert coarse.grad is None


def test_lowres_consistency_is_l1_after_area_downsampling():
    coarse = torch.rand(2, 3, 4, 4) * 2 - 1
    up = torch.nn.functional.interpolate(coarse, scale_factor=4, mode="nearest")
    assert float(lowres_consistency(up, coarse)) == pytest.approx(0.0, abs=1e-7)
    # a colour change of the object alone (one 4x4 cell) moves it; a whole-image shift too
    fine = up.clone()
    fine[:, 0, 4:8, 4:8] += 0.8
    assert float(lowres_consistency(fine, coarse)) == pytest.approx(0.8 / 48, rel=1e-5)
    assert float(lowres_consistency(up + 0.3, coarse)) == pytest.approx(0.3, rel=1e-5)
    fine = up.clone().requires_grad_(True)
    c = coarse.clone().requires_grad_(True)
    lowres_consistency(fine + 0.1, c).backward()
    assert fine.grad is not None and fine.grad.abs().sum() > 0 and c.grad is None


def test_mean_covariance_matches_numpy():
    img = torch.rand(1, 3, 5, 7)
    mu, cov = mean_covariance(img)
    pix = img[0].reshape(3, -1).double().numpy()
    import numpy as np

    assert np.allclose(mu[0].numpy(), pix.mean(1), atol=1e-6)
    assert np.allclose(cov[0].numpy(), np.cov(pix, bias=True), atol=1e-6)


def test_unconditional_losses():
    big = torch.full((4,), 20.0)
    loss, terms = unconditional_discriminator_loss(big, -big)
    assert float(loss) < 1e-6
    loss, terms = unconditional_discriminator_loss(-big, big)
    assert float(terms["d_real_uncond"]) > 10 and float(terms["d_fake_uncond"]) > 10
    g_loss, g_terms = generator_adv_loss(None, big)
    assert set(g_terms) == {"g_adv_uncond"} and float(g_loss) < 1e-6
    with pytest.raises(ValueError):
        generator_adv_loss(None, None)


def _tiny_v2(conditional=True, branches=3):
    g = TreeGenerator(
        16 if conditional else 0,
        z_dim=8,
        cond_dim=8,
        ngf=8,
        num_branches=branches,
        num_res_blocks=1,
        base_size=16,
    )
    ds = [
        Discriminator(
            16 * 2**i, 16 if conditional else 0, ndf=4, disc_text_dim=8, uncond=True, joint_kernel=3
        )
        for i in range(branches)
    ]
    return g, ds


def test_v2_steps_update_every_scale_and_report_each_term():
    g, ds = _tiny_v2()
    d_opts = [torch.optim.Adam(d.parameters(), 1e-3) for d in ds]
    g_opt = torch.optim.Adam(g.parameters(), 1e-3)
    text = torch.randn(4, 16)
    out = g(torch.randn(4, 8), text)
    reals = [torch.rand(4, 3, s, s) * 2 - 1 for s in (16, 32, 64)]
    before = [d.cond_head.out.weight.clone() for d in ds]
    for d, opt, real, fake in zip(ds, d_opts, reals, out.images):
        stats = d_step(d, opt, real, fake, text, text.roll(1, 0))
        assert {"d_real", "d_wrong", "d_fake", "d_real_uncond", "d_fake_uncond"} <= set(stats)
    assert all(not torch.equal(b, d.cond_head.out.weight) for b, d in zip(before, ds))
    g_before = [h[0].weight.clone() for h in g.heads]
    stats = g_step(g, ds, g_opt, out, text, color_weight=1.0)
    for i in range(3):
        assert {f"g_adv_{i}", f"g_adv_uncond_{i}"} <= set(stats)
    assert {"cc_mean_1", "cc_cov_1", "cc_mean_2", "cc_cov_2", "kl", "g_loss"} <= set(stats)
    assert all(not torch.equal(b, h[0].weight) for b, h in zip(g_before, g.heads))


def test_v2_unconditional_steps():
    g, ds = _tiny_v2(conditional=False, branches=2)
    out = g(torch.randn(4, 8))
    stats = d_step(
        ds[0],
        torch.optim.Adam(ds[0].parameters()),
        torch.rand(4, 3, 16, 16),
        out.images[0],
        None,
        None,
    )
    assert set(stats) == {"d_real_uncond", "d_fake_uncond", "d_loss", "real_sign"}
    stats = g_step(g, ds, torch.optim.Adam(g.parameters()), out, None, color_weight=50.0)
    assert "kl" not in stats and {"g_adv_uncond_0", "g_adv_uncond_1", "cc_mean_1"} <= set(stats)


def test_ema_update():
    g, _ = _tiny_v2(branches=1)
    g_ema, _ = _tiny_v2(branches=1)
    g_ema.load_state_dict(g.state_dict())
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    p0 = next(g_ema.parameters()).clone()
    update_ema(g_ema, g, 0.999)
    assert torch.allclose(next(g_ema.parameters()), p0 + 0.001, atol=1e-6)
    update_ema(g_ema, g, 0.0)
    assert torch.equal(next(g_ema.parameters()), next(g.parameters()))


def test_spectral_norm_option_bounds_every_discriminator_weight():
    d = Discriminator(32, 16, ndf=4, disc_text_dim=8, uncond=True, spectral_norm=True)
    for _ in range(20):  # power iterations run on training-mode forwards
        d(torch.randn(2, 3, 32, 32), torch.randn(2, 16))
    convs = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for m in convs:
        w = m.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, rel=0.1)
    assert Discriminator(32, 16, ndf=4).encode_image[0][0].weight.requires_grad  # off by default


def test_projection_head_adds_text_image_inner_product(tmp_path):
    torch.manual_seed(1)
    d = Discriminator(32, 16, ndf=4, disc_text_dim=8, projection=True).eval()
    img, text = torch.randn(3, 3, 32, 32), torch.randn(3, 16)
    code = d.encode(img)
    head = d.cond_head
    assert head is not None and head.proj is not None and d.text_fc is not None
    assert not head.proj.weight.any()  # zero at initialisation: the papers' head to begin with
    with torch.no_grad():
        head.proj.weight.normal_()
    t = d.text_fc(text)
    joined = torch.cat([code, t[:, :, None, None].expand(-1, -1, 4, 4)], dim=1)
    concat_only = head.out(head.joint(joined)).flatten()
    expected = concat_only + (code.sum(dim=(2, 3)) * head.proj(t)).sum(dim=1)
    assert torch.allclose(d(img, text), expected, atol=1e-5)
    with torch.no_grad():
        head.proj.weight.zero_()  # a zero projection is the plain concat head
    assert torch.allclose(d(img, text), concat_only, atol=1e-5)
    assert Discriminator(32, 16, ndf=4).cond_head.proj is None  # type: ignore[union-attr]
    # with spectral norm it cannot start at zero (sigma 0): a finite logit and gradient
    sn = Discriminator(32, 16, ndf=4, disc_text_dim=8, projection=True, spectral_norm=True)
    out = sn(img, text)
    out.sum().backward()
    proj_grad = sn.cond_head.proj.parametrizations.weight.original.grad  # type: ignore[union-attr]
    assert torch.isfinite(out).all() and torch.isfinite(proj_grad).all()
    with pytest.raises(ValueError, match="conditional"):
        JointHead(16, 0, projection=True)
    for stage in (1, 2):
        cfg = tiny_config(tmp_path, stage, **{"model.d_projection": True})
        assert build_discriminators(cfg)[0].cond_head.proj is not None  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="d_projection needs text"):
        tiny_config(
            tmp_path,
            **{"model.version": "v2", "model.conditional": False, "model.d_projection": True},
        )
