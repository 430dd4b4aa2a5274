"""Exponential moving average of generator weights (the ``g_ema`` used for sampling)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def update_ema(g_ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """g_ema <- decay * g_ema + (1 - decay) * generator; buffers (BatchNorm statistics) are copied.

    ``decay = 0`` keeps g_ema an exact copy (the paper's setting: no averaging).
    """
    for p_ema, p in zip(g_ema.parameters(), generator.parameters()):
        if decay == 0.0:
            p_ema.copy_(p)
        else:
            p_ema.lerp_(p.to(p_ema.dtype), 1.0 - decay)
    for b_ema, b in zip(g_ema.buffers(), generator.buffers()):
        b_ema.copy_(b)
