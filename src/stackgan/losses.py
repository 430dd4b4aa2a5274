"""Losses of the matching-aware GAN (StackGAN paper, eq. 3-6), as pure functions of logits.

The discriminator sees three pairs: (real image, matching text) -> real, (real image, mismatched
text) -> fake, and (generated image, matching text) -> fake. Scoring the mismatched pair as fake is
what forces D to judge text-image agreement and not realism alone (Reed et al., 2016, GAN-CLS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stackgan.models.conditioning import kl_divergence

__all__ = [
    "color_consistency",
    "discriminator_loss",
    "generator_adv_loss",
    "kl_divergence",
    "lowres_consistency",
    "mean_covariance",
    "unconditional_discriminator_loss",
]

COVARIANCE_FACTOR = 5.0  # StackGAN++ eq. (8): lambda_2 = 5 * lambda_1 for the covariance term


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


def unconditional_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain GAN D loss for unconditional mode: -log D(real) - log(1 - D(fake))."""
    terms = {"d_real_uncond": _bce(real_logits, 1.0), "d_fake_uncond": _bce(fake_logits, 0.0)}
    return terms["d_real_uncond"] + terms["d_fake_uncond"], {
        k: v.detach() for k, v in terms.items()
    }


def generator_adv_loss(
    fake_logits: torch.Tensor | None,
    fake_uncond: torch.Tensor | None = None,
    *,
    uncond_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Non-saturating G loss: -log D(fake, text) [+ u * -log D_uncond(fake)].

    With no conditional logits (unconditional mode) it is -log D_uncond(fake), weight 1.
    """
    if fake_logits is None:
        if fake_uncond is None:
            raise ValueError("generator_adv_loss needs conditional or unconditional logits")
        terms = {"g_adv_uncond": _bce(fake_uncond, 1.0)}
        return terms["g_adv_uncond"], {k: v.detach() for k, v in terms.items()}
    terms = {"g_adv": _bce(fake_logits, 1.0)}
    loss = terms["g_adv"]
    if fake_uncond is not None:
        terms["g_adv_uncond"] = _bce(fake_uncond, 1.0)
        loss = loss + uncond_weight * terms["g_adv_uncond"]
    return loss, {k: v.detach() for k, v in terms.items()}


def mean_covariance(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image colour statistics: (B, 3, H, W) -> mean (B, 3) and covariance (B, 3, 3) of the
    pixels (normalised by the pixel count, as the reference ``compute_mean_covariance``)."""
    x = img.float().flatten(2)  # (B, 3, HW)
    mu = x.mean(dim=2)  # (B, 3)
    centred = x - mu[:, :, None]
    cov = centred @ centred.transpose(1, 2) / x.shape[2]  # (B, 3, 3)
    return mu, cov


def color_consistency(
    fine: torch.Tensor, coarse: torch.Tensor, weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """StackGAN++ colour-consistency regulariser (sec. 3.3, eq. 8) between two scales of the same
    samples: weight * (MSE of the colour means + 5 * MSE of the colour covariances).

    The coarse image is detached, as in the reference code: the finer branch is pulled towards
    the colours of the coarser one, never the other way.

    Args:
        fine: (B, 3, S, S) images of the finer branch.
        coarse: (B, 3, S/2, S/2) (any size) images of the coarser branch, same samples.
        weight: lambda_1.
    """
    mu_f, cov_f = mean_covariance(fine)
    mu_c, cov_c = mean_covariance(coarse.detach())
    terms = {"cc_mean": F.mse_loss(mu_f, mu_c), "cc_cov": F.mse_loss(cov_f, cov_c)}
    loss = weight * (terms["cc_mean"] + COVARIANCE_FACTOR * terms["cc_cov"])
    return loss, {k: v.detach() for k, v in terms.items()}


def lowres_consistency(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between ``fine`` area-downsampled to ``coarse``'s size and ``coarse``
    (detached: the finer stage follows the coarser one). Zero when the finer image is an
    upsampled copy of the coarser one; pixel-wise, unlike :func:`color_consistency`, so it
    holds the object's colour and place and not only the whole image's colour statistics."""
    small = F.interpolate(fine.float(), size=coarse.shape[-2:], mode="area")
    return F.l1_loss(small, coarse.detach().float())
