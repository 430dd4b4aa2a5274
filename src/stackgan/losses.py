"""Losses of the matching-aware GAN (StackGAN paper, eq. 3-6), as pure functions of logits.

The discriminator sees three pairs: (real image, matching text) -> real, (real image, mismatched
text) -> fake, and (generated image, matching text) -> fake. Scoring the mismatched pair as fake is
what forces D to judge text-image agreement and not realism alone (Reed et al., 2016, GAN-CLS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stackgan.models.conditioning import kl_divergence

__all__ = ["discriminator_loss", "generator_adv_loss", "kl_divergence"]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        logits.float(), torch.full_like(logits.float(), target)
    )


def discriminator_loss(
    real_logits: torch.Tensor,
    wrong_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_uncond: torch.Tensor | None = None,
    fake_uncond: torch.Tensor | None = None,
    *,
    wrong_fake_weight: float = 0.5,
    uncond_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D loss = real + w * (wrong + fake) [+ u * (real_uncond + fake_uncond)].

    Args:
        real_logits, wrong_logits, fake_logits: (B,) conditional logits of the three pairs.
        real_uncond, fake_uncond: (B,) unconditional logits, when D has that head.
        wrong_fake_weight: w, 0.5 in the reference code.
        uncond_weight: u, weight of the unconditional terms.

    Returns:
        The scalar loss and its named terms (detached).
    """
    terms = {
        "d_real": _bce(real_logits, 1.0),
        "d_wrong": _bce(wrong_logits, 0.0),
        "d_fake": _bce(fake_logits, 0.0),
    }
    loss = terms["d_real"] + wrong_fake_weight * (terms["d_wrong"] + terms["d_fake"])
    if (real_uncond is None) != (fake_uncond is None):
        raise ValueError("pass both unconditional logits or neither")
    if real_uncond is not None and fake_uncond is not None:
        terms["d_real_uncond"] = _bce(real_uncond, 1.0)
        terms["d_fake_uncond"] = _bce(fake_uncond, 0.0)
        loss = loss + uncond_weight * (terms["d_real_uncond"] + terms["d_fake_uncond"])
    return loss, {k: v.detach() for k, v in terms.items()}


def generator_adv_loss(
    fake_logits: torch.Tensor,
    fake_uncond: torch.Tensor | None = None,
    *,
    uncond_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Non-saturating G loss: -log D(fake, text) [+ u * -log D_uncond(fake)]."""
    terms = {"g_adv": _bce(fake_logits, 1.0)}
    loss = terms["g_adv"]
    if fake_uncond is not None:
        terms["g_adv_uncond"] = _bce(fake_uncond, 1.0)
        loss = loss + uncond_weight * terms["g_adv_uncond"]
    return loss, {k: v.detach() for k, v in terms.items()}
