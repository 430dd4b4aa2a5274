"""One discriminator update and one generator update, as plain functions returning scalars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from stackgan.losses import (
    color_consistency,
    discriminator_loss,
    generator_adv_loss,
    kl_divergence,
    lowres_consistency,
    unconditional_discriminator_loss,
)
from stackgan.models.discriminator import BaseDiscriminator
from stackgan.models.v1 import GeneratorOutput
from stackgan.train.matching import info_nce
from stackgan.train.superres import recon_loss

Autocast = Callable[[], contextlib.AbstractContextManager[object]]
Augment = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _no_autocast() -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


def d_step(
    discriminator: BaseDiscriminator,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    text: torch.Tensor | None,
    wrong_text: torch.Tensor | None,
    *,
    wrong_fake_weight: float = 0.5,
    uncond_weight: float = 1.0,
    autocast: Autocast = _no_autocast,
    augment: Augment | None = None,
    r1_gamma: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
    r1_discriminator: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Update D on (real, text), (real, wrong text) and (fake, text); returns the losses as
    detached 0-d tensors on the device (no host synchronisation: the loop reads them per tick).

    Args:
        real, fake: (B, 3, S, S) images at D's resolution; ``fake`` is detached here.
        text, wrong_text: (B, text_dim) matching and mismatched embeddings; None for an
            unconditional model (D then only tells real from fake).
        augment: applied to both images before D sees them (``loss.augment``).
        r1_gamma: when > 0, adds ``r1_gamma / 2 * r1_penalty`` (see :func:`r1_penalty`); the
            loop passes the lazily scaled gamma on regularisation steps and 0 otherwise.
        scaler: the loss scaler of fp16 training (None otherwise).
        r1_discriminator: the same discriminator, not compiled, for the R1 penalty (default:
            ``discriminator``).
    """
    aug = augment or _identity
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        conditional = text is not None and wrong_text is not None
        # through forward (DDP synchronises only that): the real images encoded once and scored
        # with the right and the wrong text, then the fakes with the right text
        texts = (text, wrong_text) if conditional else ()
        real_cond, real_u = discriminator(aug(real), texts=texts)
        fake_cond, fake_u = discriminator(aug(fake.detach()), texts=texts[:1])
        if not conditional:
            assert real_u is not None and fake_u is not None  # an unconditional D has that head
            loss, terms = unconditional_discriminator_loss(real_u, fake_u)
        else:
            loss, terms = discriminator_loss(
                real_cond[0],
                real_cond[1],
                fake_cond[0],
                real_u,
                fake_u,
                wrong_fake_weight=wrong_fake_weight,
                uncond_weight=uncond_weight,
            )
    out = dict(terms)
    out["d_loss"] = loss.detach()
    # ADA's overfitting signal: the mean sign of D's logits for real (matching) pairs
    real_logits = real_cond[0] if conditional else real_u
    assert real_logits is not None
    out["real_sign"] = real_logits.detach().float().sign().mean()
    if r1_gamma > 0:
        scale = float(scaler.get_scale()) if scaler is not None else 1.0
        d_r1 = r1_discriminator if r1_discriminator is not None else discriminator
        r1 = r1_penalty(d_r1, aug(real), text, autocast, scale)  # type: ignore[arg-type]
        loss = loss + 0.5 * r1_gamma * r1
        out["r1"] = r1.detach()
    _backward_step(loss, optimizer, scaler)
    return out


def _backward_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """backward and step, through the loss scaler in fp16 (which skips a step whose gradients
    overflowed and lowers its scale)."""
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def r1_penalty(
    discriminator: BaseDiscriminator,
    real: torch.Tensor,
    text: torch.Tensor | None,
    autocast: Autocast = _no_autocast,
    scale: float = 1.0,
) -> torch.Tensor:
    """Mean over the batch of ||d s / d x||^2 (+ ||d s / d t||^2 for a conditional D), where s is
    D's score of the real pair: its conditional logit for (x, t), plus the unconditional logit
    when D has that head. Differentiable (``create_graph``), so it can be minimised. In fp16,
    ``scale`` is the loss scaler's: the gradients are taken of the scaled score (so they do not
    underflow) and unscaled before use (PyTorch's AMP recipe for gradient penalties)."""
    x = real.detach().requires_grad_(True)
    inputs = [x]
    with autocast():
        # (an unconditional model has no text here; the module may be a DDP wrapper)
        t = text.detach().requires_grad_(True) if text is not None else None
        if t is not None:
            inputs.append(t)
        cond, u = discriminator(x, texts=(t,) if t is not None else ())
        score = torch.zeros(len(x), device=x.device)
        if cond:
            score = score + _per_sample(cond[0])
        if u is not None:
            score = score + _per_sample(u)
    grads = torch.autograd.grad(score.sum() * scale, inputs, create_graph=True)
    if scale != 1.0:
        grads = tuple(g / scale for g in grads)
    start = torch.zeros(len(x), device=x.device)
    return sum((g.float().square().flatten(1).sum(1) for g in grads), start).mean()


def _per_sample(logits: torch.Tensor) -> torch.Tensor:
    """(B,) or (B, P) patch logits -> (B,) float: each sample's score summed over its patches."""
    return logits.float().flatten(1).sum(1) if logits.dim() > 1 else logits.float()


def g_step(
    generator: nn.Module,
    discriminators: list[BaseDiscriminator],
    optimizer: torch.optim.Optimizer,
    out: GeneratorOutput,
    text: torch.Tensor | None,
    *,
    kl_weight: float = 2.0,
    uncond_weight: float = 1.0,
    color_weight: float = 0.0,
    lowres_weight: float = 0.0,
    autocast: Autocast = _no_autocast,
    augment: Augment | None = None,
    matcher: nn.Module | None = None,
    match_weight: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
    recon: tuple[torch.Tensor, torch.Tensor] | None = None,
    recon_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Update G to fool every discriminator at its scale, plus lambda * KL of its Conditioning
    Augmentation and, when ``color_weight > 0``, colour consistency between consecutive scales
    (StackGAN++ eq. 8; for v1 Stage-II, between the Stage-I image and its own), and when
    ``lowres_weight > 0`` the L1 distance of each image, downsampled, to the coarser one; with
    a frozen ``matcher`` (:mod:`stackgan.train.matching`), ``match_weight`` times the InfoNCE of
    the final image's embedding against the batch's text; with ``recon`` = (real photos,
    (B,) mask), ``recon_weight`` times the L1 distance of the final images to those photos
    where the mask is set (:mod:`stackgan.train.superres`).

    ``discriminators`` judge the last ``len(discriminators)`` images of ``out`` (v1: Stage-II's
    D sees only the 256 image; v2: one D per branch). ``out`` is the generator output of this
    iteration (the same fakes D was just trained on, as the reference code does); D's
    parameters receive gradients but are not stepped here. ``augment`` is applied to each image
    before its D, as in :func:`d_step`.
    """
    aug = augment or _identity
    optimizer.zero_grad(set_to_none=True)
    images = out.images[-len(discriminators) :]
    res: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=images[-1].device)
    with autocast():
        for i, (d, img) in enumerate(zip(discriminators, images)):
            use_text = text is not None and d.conditional
            cond, uncond = d(aug(img), texts=(text,) if use_text else ())
            adv, terms = generator_adv_loss(
                cond[0] if cond else None, uncond, uncond_weight=uncond_weight
            )
            loss = loss + adv
            suffix = f"_{i}" if len(discriminators) > 1 else ""
            res.update({f"{k}{suffix}": v for k, v in terms.items()})
    # finer stage pulled to the coarser one, for each consecutive pair of the output: v2's
    # branches, or v1's frozen Stage-I image and the Stage-II image
    for i in range(1, len(out.images)):
        fine, coarse = out.images[i], out.images[i - 1]
        if i == len(out.images) - 1 and out.coarse_crop is not None:  # the tree on crops
            coarse = out.coarse_crop
        if color_weight > 0:
            cc, terms = color_consistency(fine, coarse, color_weight)
            loss = loss + cc
            res.update({f"{k}_{i}": v for k, v in terms.items()})
        if lowres_weight > 0:
            lr = lowres_consistency(fine, coarse)
            loss = loss + lowres_weight * lr
            res[f"lowres_{i}"] = lr.detach()
    if matcher is not None and text is not None and match_weight > 0:
        # the final image; for a tree on crops, the whole image before the square (the matcher
        # reads 64 px anyway, and a square can cut the object the caption names away)
        final = out.images[-2] if out.coarse_crop is not None else out.images[-1]
        with autocast():
            emb = matcher(aug(final))
        match, acc = info_nce(emb, text)
        loss = loss + match_weight * match
        res.update(match=match.detach(), match_top1=acc.detach())
    if recon is not None and recon_weight > 0:
        rec = recon_loss(out.images[-1], recon[0], recon[1])
        loss = loss + recon_weight * rec
        res["recon"] = rec.detach()
    if out.mus:
        kl = sum(
            (kl_divergence(m.float(), lv.float()) for m, lv in zip(out.mus, out.logvars)),
            torch.zeros((), device=loss.device),
        )
        loss = loss + kl_weight * kl
        res["kl"] = kl.detach()
    _backward_step(loss, optimizer, scaler)
    res["g_loss"] = loss.detach()
    return res
