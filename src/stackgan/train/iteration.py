"""One training iteration: what ``stackgan train`` runs per step, and what the benchmarks time.

:func:`iteration` = :func:`next_batch` (the data: a seeded shuffle per epoch, the learning rate
for the epoch, crops and flips, right and mismatched captions, z) then :func:`train_step` (the
networks: G's images once, one D step per discriminator on them, the G step with the
discriminators frozen, then the EMA). ``benchmarks/bench_train_step.py`` and
``bench_vs_reference.py`` build a :class:`~stackgan.train.state.TrainState` through the
library and time :func:`train_step` on random inputs, so they time what training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stackgan.augment import AdaptiveAugment
from stackgan.config import ExperimentConfig
from stackgan.data.negatives import wrong_text
from stackgan.models.layers import crop_squares, random_corners
from stackgan.train import superres
from stackgan.train.ema import ramped_decay, update_ema
from stackgan.train.setup import TrainData
from stackgan.train.state import TrainState
from stackgan.train.steps import Augment, Autocast, d_step, g_step
from stackgan.utils.distributed import DistInfo, rank_slice


@dataclass
class Runtime:
    """How the run computes: device, mixed precision, memory layout, D input augmentation."""

    device: torch.device
    autocast: Autocast
    memory_format: torch.memory_format
    augment: Augment | None
    dist: DistInfo
    ada: AdaptiveAugment | None = None  # loss.ada_target: augment is this, with its p


@dataclass
class StepInputs:
    """What one iteration trains on, on the device, this rank's slice of the global batch.

    reals: per discriminator, (B, 3, S, S) real images in [-1, 1], lowest resolution first;
    z: (B, z_dim); text, wrong: (B, text_dim) right and mismatched caption embeddings (None
    for an unconditional model); eps: (B, cond_dim) CA noise drawn for the global batch under
    torchrun (None: G draws it itself); corners: a StackGAN++ tree under ``train.crop``, the
    (B, 2) corners of G's square and of the real photos' squares (:func:`tree_crop_corners`).
    """

    reals: list[torch.Tensor]
    z: torch.Tensor
    text: torch.Tensor | None = None
    wrong: torch.Tensor | None = None
    eps: torch.Tensor | None = None
    corners: tuple[torch.Tensor, torch.Tensor] | None = None


def iters_per_epoch(cfg: ExperimentConfig, data: TrainData, rt: Runtime) -> int:
    """Iterations per pass over the data at the global batch (train.batch_size x ranks)."""
    return math.ceil(len(data.ds) / (cfg.train.batch_size * rt.dist.world_size))


def iteration(
    cfg: ExperimentConfig,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: Runtime,
) -> dict[str, torch.Tensor]:
    """One iteration: a batch, G's images, each D phase, then the G phase and the EMA."""
    return train_step(cfg, state, next_batch(cfg, data, state, rt), matcher, rt)


def next_batch(
    cfg: ExperimentConfig, data: TrainData, state: TrainState, rt: Runtime
) -> StepInputs:
    """The iteration's inputs (and the epoch's learning rate, set on the optimisers)."""
    tc, oc, lc = cfg.train, cfg.optim, cfg.loss
    ds, step = data.ds, state.step
    # 1. the batch: a fresh shuffle each epoch, reproducible from the step. Every rank draws
    # the same global batch (train.batch_size per rank) and trains on its own slice of it
    world = rt.dist.world_size
    gb = tc.batch_size * world
    epoch, pos = divmod(step, iters_per_epoch(cfg, data, rt))
    perm_gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch)
    perm = torch.randperm(len(ds), generator=perm_gen)
    idx = perm[pos * gb : (pos + 1) * gb]
    if len(idx) < 2 * world or len(idx) % world:  # a partial last batch: a full one instead
        idx = perm[:gb]
    lr_scale = oc.lr_decay_factor ** (epoch // max(oc.lr_decay_epochs, 1))  # halved per 100 ep.
    state.set_lr(oc.g_lr * lr_scale, oc.d_lr * lr_scale)
    batch = ds.sample(idx, data.sizes, state.data_gen)
    reals = [
        im.to(rt.device, non_blocking=True).contiguous(memory_format=rt.memory_format)
        for im in batch.images
    ]
    # 2. the text: right captions, and mismatched ones for the matching-aware D
    text = wrong = None
    if data.emb is not None and data.text is not None:
        assert batch.caption_idx is not None and batch.wrong_caption_idx is not None
        text = data.emb[batch.caption_idx.to(rt.device)]
        wrong = wrong_text(
            data.text,
            idx,
            batch.caption_idx,
            batch.wrong_caption_idx,
            data.emb,
            state.data_gen,
            wrong_candidates=lc.wrong_candidates,
            swap_negatives=lc.swap_negatives,
            swap_emb=data.swap_emb,
            swap_ok=data.swap_ok,
            swap_variants=lc.swap_variants,
        )
    z = torch.randn(len(idx), cfg.model.z_dim, device=rt.device)
    eps = None  # one process: G draws the CA noise itself, the same numbers
    if rt.dist.enabled and text is not None:
        # every rank draws the global batch's CA noise and keeps its slice, as for z (a v1
        # Stage-II then uses one draw for both stages, as sampling does)
        eps = torch.randn(len(idx), cfg.model.cond_dim, device=rt.device)
    corners = None
    if cfg.model.version == "v2" and tc.crop:  # drawn for the global batch, as z: every rank
        # draws the same numbers and keeps its slice, so no two ranks crop alike
        corners = tree_crop_corners(len(idx), reals[-1].shape[-1], tc.crop, state.data_gen)
    mine = rank_slice(len(idx), rt.dist)  # (all of it in one process)
    reals, z = [r[mine] for r in reals], z[mine]
    if text is not None and wrong is not None:
        text, wrong = text[mine], wrong[mine]
    if eps is not None:
        eps = eps[mine]
    if corners is not None:
        corners = (corners[0][mine], corners[1][mine])
    return StepInputs(reals, z, text, wrong, eps, corners)


def tree_crop_corners(
    n: int, size: int, crop: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (n, 2) corners of G's ``crop``-pixel squares of its ``size``-pixel image (even, so
    that they fall on the branch before's pixels) and of the real photos' squares."""
    g_corners = torch.randint(0, (size - crop) // 2 + 1, (n, 2), generator=gen) * 2
    return g_corners, random_corners(n, size - crop + 1, gen)


def train_step(
    cfg: ExperimentConfig,
    state: TrainState,
    inputs: StepInputs,
    matcher: nn.Module | None,
    rt: Runtime,
) -> dict[str, torch.Tensor]:
    """The networks' part of an iteration at ``state.step``: G's images once, every D phase on
    them (detached), then the G phase (D frozen) and the EMA. Returns the losses as 0-d
    tensors on the device (read per tick)."""
    tc, lc = cfg.train, cfg.loss
    step, reals, text, wrong = state.step, inputs.reals, inputs.text, inputs.wrong
    # 3. G's images, once: every D phase trains on them (detached), then the G phase; during a
    # D warm-up no G step follows, so under DDP G runs without a graph to reduce
    g_update = step >= tc.d_warmup_iters
    sr = None
    with rt.autocast(), torch.set_grad_enabled(g_update or not rt.dist.enabled):
        if superres.uses_superres(cfg):  # v1 Stage-II on real pairs and/or crops
            sr = superres.config_images(
                cfg, state, inputs.z, text, inputs.eps, reals[-1], rt.memory_format
            )
            out, reals = sr.out, [sr.real]
        elif cfg.model.version == "v2" and cfg.train.crop:  # the last branch on crops
            out, reals = tree_crop_images(cfg, state, inputs)
        else:
            out = state.g_phase.trained(inputs.z, text, inputs.eps)
    fakes = out.images[-len(state.d_phases) :]  # v1 Stage-II: D sees only the 256 image
    stats: dict[str, torch.Tensor] = {}
    r1_gamma = lc.r1_gamma * lc.r1_interval if step % lc.r1_interval == 0 else 0.0  # lazy R1
    for i, (ph, real, fake) in enumerate(zip(state.d_phases, reals, fakes)):
        d_stats = d_step(
            ph.trained,  # type: ignore[arg-type]
            ph.opt,
            real,
            fake,
            text,
            wrong,
            wrong_fake_weight=lc.wrong_fake_weight,
            uncond_weight=lc.uncond_weight,
            autocast=rt.autocast,
            augment=rt.augment,
            r1_gamma=r1_gamma,
            scaler=ph.scaler,
            r1_discriminator=ph.eager,
        )
        if rt.ada is not None and i == len(state.d_phases) - 1:  # the finest D's signal
            rt.ada.observe(d_stats["real_sign"], len(real))
        suffix = f"_{i}" if len(state.d_phases) > 1 else ""
        stats.update({f"{k}{suffix}": v for k, v in d_stats.items()})
    if len(state.d_phases) > 1:
        # in float64, added in order: the sum of the fp32 values the tick's log has always had
        total = torch.zeros((), dtype=torch.float64, device=rt.device)
        for i in range(len(state.d_phases)):
            total = total + stats[f"d_loss_{i}"].double()
        stats["d_loss"] = total
    if g_update:
        stats.update(_g_phase(cfg, state, out, text, matcher, rt, sr))
    return stats


def tree_crop_images(
    cfg: ExperimentConfig, state: TrainState, inputs: StepInputs
) -> tuple[Any, list[torch.Tensor]]:
    """StackGAN++ with ``train.crop``: G draws a random ``crop``-pixel square of its last
    branch's image (a new place per image, drawn with the batch by :func:`next_batch`), and
    the last D's real images are squares of the photos at places of their own (D compares the
    two distributions of squares; nothing needs the places to match)."""
    crop = cfg.train.crop
    if inputs.corners is None:
        raise ValueError("a tree trained on crops needs the batch's crop corners")
    g_corners, real_corners = inputs.corners
    out = state.g_phase.trained(inputs.z, inputs.text, inputs.eps, crop=(crop, g_corners))
    real_crops = crop_squares(inputs.reals[-1], real_corners, crop)
    return out, [*inputs.reals[:-1], real_crops]


def _g_phase(
    cfg: ExperimentConfig,
    state: TrainState,
    out: Any,
    text: torch.Tensor | None,
    matcher: nn.Module | None,
    rt: Runtime,
    sr: superres.Stage2Batch | None = None,
) -> dict[str, torch.Tensor]:
    """The G update, with the discriminators frozen (``requires_grad_(False)``) so that it
    computes no D parameter gradients, then the EMA."""
    for ph in state.d_phases:
        ph.module.requires_grad_(False)
    try:
        stats = g_step(
            state.generator,
            state.discriminators,
            state.g_phase.opt,
            out,
            text,
            kl_weight=cfg.loss.kl_weight,
            uncond_weight=cfg.loss.uncond_weight,
            color_weight=cfg.loss.effective_color_weight(cfg.model.conditional),
            lowres_weight=cfg.loss.lowres_weight,
            autocast=rt.autocast,
            augment=rt.augment,
            matcher=matcher,
            match_weight=cfg.loss.match_weight,
            scaler=state.g_phase.scaler,
            recon=(sr.target, sr.is_real) if sr is not None and sr.target is not None else None,
            recon_weight=cfg.loss.recon_weight,
        )
    finally:
        for ph in state.d_phases:
            ph.module.requires_grad_(True)
    tc = cfg.train
    update_ema(state.g_ema, state.generator, ramped_decay(tc.ema_decay, tc.ema_rampup, state.step))
    return stats
