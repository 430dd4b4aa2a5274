"""One discriminator update and one generator update, as plain functions returning scalars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from stackgan.losses import discriminator_loss, generator_adv_loss, kl_divergence
from stackgan.models.v1 import Discriminator, GeneratorOutput

Autocast = Callable[[], contextlib.AbstractContextManager[object]]


def _no_autocast() -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


def d_step(
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    text: torch.Tensor,
    wrong_text: torch.Tensor,
    *,
    wrong_fake_weight: float = 0.5,
    uncond_weight: float = 1.0,
    autocast: Autocast = _no_autocast,
) -> dict[str, float]:
    """Update D on (real, text), (real, wrong text) and (fake, text).

    Args:
        real, fake: (B, 3, S, S) images at D's resolution; ``fake`` is detached here.
        text, wrong_text: (B, text_dim) matching and mismatched embeddings.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        real_code = discriminator.encode(real)  # encoded once, scored with both texts
        fake_code = discriminator.encode(fake.detach())
        loss, terms = discriminator_loss(
            discriminator.cond_logits(real_code, text),
            discriminator.cond_logits(real_code, wrong_text),
            discriminator.cond_logits(fake_code, text),
            discriminator.uncond_logits(real_code),
            discriminator.uncond_logits(fake_code),
            wrong_fake_weight=wrong_fake_weight,
            uncond_weight=uncond_weight,
        )
    loss.backward()
    optimizer.step()
    out = {k: float(v) for k, v in terms.items()}
    out["d_loss"] = float(loss.detach())
    return out


def g_step(
    generator: nn.Module,
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    out: GeneratorOutput,
    text: torch.Tensor,
    *,
    kl_weight: float = 2.0,
    uncond_weight: float = 1.0,
    autocast: Autocast = _no_autocast,
) -> dict[str, float]:
    """Update G to fool D on its newest stage, plus lambda * KL of its Conditioning Augmentation.

    ``out`` is the generator output of this iteration (the same fakes D was just trained on,
    as the reference code does); D's parameters receive gradients but are not stepped here.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        code = discriminator.encode(out.images[-1])
        adv, terms = generator_adv_loss(
            discriminator.cond_logits(code, text),
            discriminator.uncond_logits(code),
            uncond_weight=uncond_weight,
        )
    kl = sum(
        (kl_divergence(m.float(), lv.float()) for m, lv in zip(out.mus, out.logvars)),
        torch.zeros(()),
    )
    loss = adv + kl_weight * kl
    loss.backward()
    optimizer.step()
    res = {k: float(v) for k, v in terms.items()}
    res.update(kl=float(kl.detach()), g_loss=float(loss.detach()))
    return res
