"""Exponential moving average of generator weights (the ``g_ema`` used for sampling)."""

from __future__ import annotations

import torch
from torch import nn


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
