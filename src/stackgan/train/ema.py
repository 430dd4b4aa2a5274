"""Exponential moving average of generator weights (the ``g_ema`` used for sampling)."""

from __future__ import annotations

import math

import torch
from torch import nn


def ramped_decay(decay: float, rampup: float, step: int) -> float:
    """The EMA decay at iteration ``step`` (0-based) under StyleGAN2-ADA's ramp-up: a half-life
    of ``rampup * (step + 1)`` iterations, capped at ``decay``'s own half-life
    (ln 0.5 / ln decay). ``rampup = 0`` or ``decay = 0`` returns ``decay``."""
    if rampup <= 0 or decay <= 0:
        return decay
    half_life = min(math.log(0.5) / math.log(decay), rampup * (step + 1))
    return float(0.5 ** (1.0 / half_life))


@torch.no_grad()
def update_ema(g_ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """g_ema <- decay * g_ema + (1 - decay) * generator; buffers (BatchNorm statistics) are copied.

    ``decay = 0`` keeps g_ema an exact copy (the paper's setting: no averaging).
    """
    # one multi-tensor kernel per list instead of one launch per tensor (a GPU step is
    # launch-bound); the same lerp and copy, element for element
    # (the foreach ops refuse empty lists: a module without parameters or buffers skips them)
    ema_params: list[torch.Tensor] = list(g_ema.parameters())
    params: list[torch.Tensor] = [p.to(e.dtype) for e, p in zip(ema_params, generator.parameters())]
    if ema_params and decay == 0.0:
        torch._foreach_copy_(ema_params, params)
    elif ema_params:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    buffers: list[torch.Tensor] = list(g_ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(generator.buffers()))


@torch.no_grad()
def standing_stats(
    g_ema: nn.Module,
    text_pool: torch.Tensor | None,
    z_dim: int,
    num_batches: int,
    batch_size: int = 64,
    seed: int = 0,
) -> None:
    """BigGAN's "standing statistics" (Brock et al., 2019, sec. 3.1 and appendix): the batch
    norm running statistics of ``g_ema`` recomputed for its own weights, as the plain average
    over ``num_batches`` batches of random z and captions drawn from ``text_pool`` (N, text_dim)
    (None: unconditional), instead of the training generator's running averages that
    :func:`update_ema` copies. The EMA weights are an average of G's recent weights; their
    activations need not have G's statistics.

    A v1 Stage-II's frozen Stage-I keeps its own statistics. ``g_ema`` is left in eval mode;
    the global RNG is left as it was (the CA noise is drawn from a fork of it).
    """
    frozen = getattr(g_ema, "stage1", None)
    norms = [
        m
        for m in g_ema.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and (frozen is None or all(m is not f for f in frozen.modules()))
    ]
    if not norms or num_batches < 1:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    device = next(g_ema.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    g_ema.train()
    if frozen is not None:
        frozen.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(num_batches):
                z = torch.randn(batch_size, z_dim, generator=gen).to(device)
                if text_pool is None:
                    g_ema(z)
                else:
                    idx = torch.randint(len(text_pool), (batch_size,), generator=gen)
                    g_ema(z, text_pool[idx.to(text_pool.device)])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        g_ema.eval()
