import pytest
import torch

from stackgan.models import (
    CondAugment,
    Discriminator,
    Stage1Generator,
    Stage2Generator,
    kl_divergence,
)
from stackgan.models.layers import DownBlock, JointHead, ResBlock, UpBlock

T = 12  # text dim


def test_blocks_shapes():
    x = torch.randn(2, 8, 8, 8)
    assert UpBlock(8, 4)(x).shape == (2, 4, 16, 16)
    assert DownBlock(8, 16)(x).shape == (2, 16, 4, 4)
    assert ResBlock(8)(x).shape == x.shape
    code = torch.randn(2, 8, 4, 4)
    assert JointHead(8, 5)(code, torch.randn(2, 5)).shape == (2,)
    assert JointHead(8, 0)(code).shape == (2,)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_stage1_generator_shapes(size):
    torch.manual_seed(0)
    g = Stage1Generator(T, z_dim=8, cond_dim=6, ngf=4, img_size=size)
    out = g(torch.randn(3, 8), torch.randn(3, T))
    assert len(out.images) == 1 and out.images[0].shape == (3, 3, size, size)
    assert out.images[0].abs().max() <= 1
    assert out.mus[0].shape == (3, 6) and out.logvars[0].shape == (3, 6)


def test_stage1_generator_channel_plan_matches_paper():
    g = Stage1Generator(1024, z_dim=100, cond_dim=128, ngf=128, img_size=64)
    assert g.fc[0].out_features == 4 * 4 * 1024  # 4x4x(ngf*8)
    assert g.to_rgb[0].in_channels == 64  # ngf/2 after four halvings


@pytest.mark.parametrize("s1,s2", [(16, 32), (32, 64), (64, 256)])
def test_stage2_generator_shapes_and_frozen_stage1(s1, s2):
    torch.manual_seed(0)
    g1 = Stage1Generator(T, 8, 6, 4, s1)
    g2 = Stage2Generator(g1, cond_dim=6, ngf=4, num_res_blocks=1, img_size=s2).train()
    out = g2(torch.randn(2, 8), torch.randn(2, T))
    assert [im.shape for im in out.images] == [(2, 3, s1, s1), (2, 3, s2, s2)]
    assert not g1.training  # Stage-I stays in eval mode
    assert all(not p.requires_grad for p in g1.parameters())
    out.images[-1].mean().backward()
    assert all(p.grad is None for p in g1.parameters())
    if s1 == 64:
        assert g2.encoder[-3].out_channels == 16  # the 16x16 code has ngf*4 channels


def test_stage2_skip_starts_as_the_upsampled_stage1_image_and_learns_a_correction():
    torch.manual_seed(0)
    g1 = Stage1Generator(T, 8, 6, 4, 16)
    g2 = Stage2Generator(g1, cond_dim=6, ngf=4, num_res_blocks=1, img_size=32, skip=True)
    z, t = torch.randn(2, 8), torch.randn(2, T)
    lo, hi = g2(z, t, torch.zeros(2, 6)).images
    up = torch.nn.functional.interpolate(lo, size=32, mode="bilinear", align_corners=False)
    assert torch.allclose(hi, up.clamp(-0.999, 0.999), atol=1e-5)  # r = 0 at initialisation
    # the correction is trainable: gradients reach the whole Stage-II network, none the Stage-I
    g2(z, t).images[-1].square().mean().backward()
    assert g2.to_rgb[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in g1.parameters())
    # same parameter names as the paper's head, so a config switch is all an export needs
    plain = Stage2Generator(g1, cond_dim=6, ngf=4, num_res_blocks=1, img_size=32)
    assert plain.state_dict().keys() == g2.state_dict().keys()
    # a saturated Stage-I pixel (+1) under bf16 autocast: the skip is computed in fp32, as in bf16
    # the clamp bound 0.999 rounds to 1 and atanh(1) = inf, which would leave the pixel at
    # exactly 1 with no gradient for its correction
    with torch.no_grad():
        g1.to_rgb[0].weight[0].fill_(1.0)  # red channel: tanh of a large positive sum -> 1
    g2.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lo16, hi16 = g2(z, t, torch.zeros(2, 6)).images
    assert (lo16[:, 0] == 1).float().mean() > 0.5 and torch.isfinite(hi16).all()
    hi16.float()[:, 0].sum().backward()
    assert g2.to_rgb[0].weight.grad[0].abs().sum() > 0


@pytest.mark.parametrize("size,uncond", [(16, False), (64, False), (256, True)])
def test_discriminator_shapes(size, uncond):
    d = Discriminator(size, T, ndf=4, disc_text_dim=5, uncond=uncond)
    img = torch.randn(2, 3, size, size)
    code = d.encode(img)
    assert code.shape == (2, d.code_ch, 4, 4)
    assert d.code_ch == min(4 * 2 ** (len(d.encode_image) and (size // 8).bit_length() - 1), 32)
    assert d.cond_logits(code, torch.randn(2, T)).shape == (2,)
    u = d.uncond_logits(code)
    assert (u is None) != uncond and (u is None or u.shape == (2,))
    with pytest.raises(ValueError, match="expected"):
        d.encode(torch.randn(2, 3, size * 2, size * 2))


def test_stage2_discriminator_reduces_back_to_ndf8():
    d = Discriminator(256, T, ndf=4, uncond=True)
    assert d.code_ch == 32  # 6 downs reach ndf*32, two 3x3 convs bring it to ndf*8


def test_conditioning_augmentation():
    torch.manual_seed(0)
    ca = CondAugment(T, 6)
    c, mu, logvar = ca(torch.randn(5, T))
    assert c.shape == mu.shape == logvar.shape == (5, 6)
    c0, mu0, _ = ca(torch.randn(5, T), torch.zeros(5, 6))
    assert torch.equal(c0, mu0)  # zero eps conditions on mu alone
    with pytest.raises(ValueError, match=r"\(B, 12\)"):
        ca(torch.randn(5, T + 1))


def test_kl_zero_at_standard_normal_and_positive_elsewhere():
    z = torch.zeros(4, 6)
    assert kl_divergence(z, z).item() == 0.0
    assert kl_divergence(z + 0.5, z).item() > 0
    assert kl_divergence(z, z + 0.5).item() > 0
    assert kl_divergence(z, z - 0.5).item() > 0
    # closed form check: mu = 1, logvar = 0 -> 0.5 per element
    assert kl_divergence(torch.ones(4, 6), z).item() == pytest.approx(0.5)
