import math

import pytest
import torch

from stackgan.losses import discriminator_loss, generator_adv_loss

BIG = 20.0  # a logit this large is a confident decision


def test_the_three_matching_aware_pairs_have_the_right_targets():
    ones, zeros = torch.full((4,), BIG), torch.full((4,), -BIG)
    # D that says real for (real, right), fake for (real, wrong) and (fake, right): near-zero loss
    loss, t = discriminator_loss(ones, zeros, zeros)
    assert loss.item() < 1e-6
    # fooled by the wrong caption: only that term is large
    loss, t = discriminator_loss(ones, ones, zeros)
    assert t["d_wrong"].item() > 10 and t["d_real"].item() < 1e-6 and t["d_fake"].item() < 1e-6
    assert loss.item() == pytest.approx(0.5 * t["d_wrong"].item(), rel=1e-4)
    # fooled by the fake image
    _, t = discriminator_loss(ones, zeros, ones)
    assert t["d_fake"].item() > 10
    # rejects the real pair
    _, t = discriminator_loss(zeros, zeros, zeros)
    assert t["d_real"].item() > 10


def test_discriminator_loss_weights():
    z = torch.zeros(3)  # every BCE term is log 2
    loss, _ = discriminator_loss(z, z, z)
    assert loss.item() == pytest.approx(math.log(2) * (1 + 0.5 * 2))
    loss, t = discriminator_loss(z, z, z, z, z, uncond_weight=1.0)
    assert set(t) == {"d_real", "d_wrong", "d_fake", "d_real_uncond", "d_fake_uncond"}
    assert loss.item() == pytest.approx(math.log(2) * 4)
    with pytest.raises(ValueError):
        discriminator_loss(z, z, z, real_uncond=z)


def test_generator_loss():
    assert generator_adv_loss(torch.full((4,), BIG))[0].item() < 1e-6
    assert generator_adv_loss(torch.full((4,), -BIG))[0].item() > 10
    z = torch.zeros(2)
    loss, t = generator_adv_loss(z, z, uncond_weight=0.5)
    assert loss.item() == pytest.approx(math.log(2) * 1.5) and "g_adv_uncond" in t


def test_losses_give_gradients_to_the_logits():
    real, wrong, fake = (torch.zeros(4, requires_grad=True) for _ in range(3))
    loss, _ = discriminator_loss(real, wrong, fake)
    loss.backward()
    assert (real.grad < 0).all()  # push real-pair logits up
    assert (wrong.grad > 0).all() and (fake.grad > 0).all()  # push the others down


@pytest.mark.parametrize("uncond", [False, True])
def test_r1_penalty_is_the_squared_gradient_of_the_real_score(uncond):
    from stackgan.models import Discriminator
    from stackgan.train.steps import r1_penalty

    torch.manual_seed(0)
    d = Discriminator(16, 6, ndf=4, disc_text_dim=5, uncond=uncond)
    x, t = torch.randn(3, 3, 16, 16), torch.randn(3, 6)
    r1 = r1_penalty(d, x, t)
    # by hand: per sample |d s/d x|^2 + |d s/d t|^2 with s = cond (+ uncond) logit
    xs, ts = x.clone().requires_grad_(True), t.clone().requires_grad_(True)
    code = d.encode(xs)
    s = d.cond_logits(code, ts) + (d.uncond_logits(code) if uncond else 0)
    gx, gt = torch.autograd.grad(s.sum(), [xs, ts])
    want = (gx.square().flatten(1).sum(1) + gt.square().sum(1)).mean()
    assert r1.item() > 0 and torch.allclose(r1, want, rtol=1e-5)
    # a score k times steeper has a k^2 larger penalty
    with torch.no_grad():
        for head in [d.cond_head] + ([d.uncond_head] if uncond else []):
            head.out.weight.mul_(3)
            if head.out.bias is not None:
                head.out.bias.mul_(3)
    assert torch.allclose(r1_penalty(d, x, t), 9 * r1, rtol=1e-4)
    # differentiable: minimising it moves D's weights
    r1_penalty(d, x, t).backward()
    assert d.cond_head.out.weight.grad.abs().sum() > 0
    # an unconditional D: the image gradient of its realism logit alone
    du = Discriminator(16, 0, ndf=4, disc_text_dim=5)
    assert r1_penalty(du, x, None).item() > 0
