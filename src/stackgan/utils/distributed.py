"""Multi-process training with PyTorch's own engine: ``torchrun`` starts the processes and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; this module joins them (gloo on the CPU, nccl on
CUDA) and gives the loop what it needs: which rank this is, the mean of scalars over ranks, a
barrier, and batch normalisation computed over every rank's samples. No process management of
our own.

How the loop uses it (``stackgan.train.loop``): every rank draws the same global batch
(``train.batch_size`` x world size, from the same seeded streams) and trains on its slice, so
a run's data and noise do not depend on how many processes share it; G and each D are wrapped
in ``DistributedDataParallel``, which averages their gradients; rank 0 alone writes the run
folder.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

# Rank 0 alone builds the data caches, fits the image matcher and runs the tick maintenance
# (metrics, checkpoints) while the others wait at a barrier or in the next all-reduce: on a
# first run over a large dataset that can outlast torch's default 10 (nccl) to 30 (gloo) min.
DIST_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """From torchrun's environment (one process when it is not set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device_type: str = "cpu") -> DistInfo:
    """Join the process group torchrun prepared (once; later calls return the same info)."""
    info = dist_info()
    if info.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        # on GPUs, NCCL for the CUDA tensors (gradients, batch norm) and gloo for the few CPU
        # scalars (the iteration's seconds), which then never wait on the GPU's stream
        backend = "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=DIST_TIMEOUT)
    return info


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """The mean of each scalar over the ranks (one all-reduce); the values as they are alone.
    Every rank must pass the same keys."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = sum_across(torch.tensor([values[k] for k in keys], dtype=torch.float64), info)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}


def sum_across(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise sum of ``t`` over the ranks (one all-reduce, on ``t``'s device; the
    tensor as it is alone)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def broadcast_text(text: str | None, info: DistInfo) -> str:
    """Rank 0's ``text`` on every rank (the run folder it created, say)."""
    if not info.enabled:
        assert text is not None
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    assert box[0] is not None
    return str(box[0])


def rank_slice(n_global: int, info: DistInfo) -> slice:
    """This rank's rows of a global batch of ``n_global`` (equal parts)."""
    per = n_global // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the samples of every rank, for the CPU and gloo, where
    ``torch.nn.SyncBatchNorm`` does not run (it is CUDA-only). The batch's sums and sums of
    squares are all-reduced through a differentiable all-reduce, so the gradients are those of
    normalising the whole global batch; one process (or eval mode) is plain batch norm."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input, got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        count = torch.full((1,), xf.numel() / c, dtype=xf.dtype, device=x.device)
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        with warnings.catch_warnings():  # (torch marks this differentiable all-reduce deprecated)
            warnings.simplefilter("ignore", FutureWarning)
            stats = dist_nn.all_reduce(local)
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)  # biased, as batch norm uses
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                assert self.running_var is not None and self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y: torch.Tensor = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Every batch norm of ``module`` computed over all ranks: torch's ``SyncBatchNorm`` on
    CUDA, :class:`CrossRankBatchNorm` on the CPU. Parameters and buffers are kept."""
    if device_type == "cuda":
        converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return converted
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        bn = CrossRankBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        # the same Parameter and buffer objects: optimisers built before keep training them
        if module.affine:
            bn.weight, bn.bias = module.weight, module.bias
        bn.running_mean, bn.running_var = module.running_mean, module.running_var
        bn.num_batches_tracked = module.num_batches_tracked
        bn.train(module.training)
        return bn
    for name, child in module.named_children():
        setattr(module, name, _convert_cpu(child))
    return module
