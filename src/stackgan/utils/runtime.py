"""Device, mixed precision and seeding helpers."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import torch

from stackgan.errors import StackGANError

P = ParamSpec("P")
R = TypeVar("R")


class DeviceError(StackGANError, ValueError):
    """A device name that is not valid, or not available in this PyTorch build."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda when available, else cpu. Raises :class:`DeviceError` for a name torch
    does not know or a device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(
            f"unknown device {str(name)!r}: use cpu, cuda, cuda:N, mps or auto"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "a CPU-only build" if torch.version.cuda is None else "no GPU is visible"
            raise DeviceError(
                f"device {str(name)!r} requested but CUDA is not available ({why} of PyTorch "
                f"{torch.__version__}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(name)!r} requested but MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {str(name)!r}: use cpu, cuda, cuda:N or mps")
    return dev


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The processor's feature flags (Linux: ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX bf16 tile instructions (Intel Sapphire Rapids and later), which
    oneDNN uses for bf16 convolutions and matrix products."""
    return "amx_bf16" in cpu_flags()


BF16_MIN_GAIN = 0.9  # bf16 is chosen by measurement only when it takes < 90% of fp32's time


def _bf16_measured_faster(reps: int = 3) -> bool:
    """Time a small conv stack's forward and backward (the bulk of a GAN step) in fp32 and in
    bf16 autocast on this CPU; whether bf16 is clearly faster (min of ``reps`` after warm-up)."""
    import time

    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    convs = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1))
    convs.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.randn(8, 64, 16, 16, generator=gen).contiguous(memory_format=torch.channels_last)

    def timed(ctx: Callable[[], contextlib.AbstractContextManager[object]]) -> float:
        best = float("inf")
        for i in range(reps + 1):
            start = time.perf_counter()
            with ctx():
                y = convs(x.requires_grad_(True))
            y.float().square().mean().backward()
            if i:  # the first call is the warm-up (oneDNN picks and caches its kernels)
                best = min(best, time.perf_counter() - start)
        return best

    with torch.random.fork_rng(devices=[]):
        fp32 = timed(contextlib.nullcontext)
        bf16 = timed(lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    return bf16 < BF16_MIN_GAIN * fp32


@functools.cache
def cpu_prefers_bf16() -> bool:
    """Whether ``train.amp: auto`` trains in bf16 on this CPU, from what the processor does.

    - AMX bf16 tiles: yes. A Stage-I step at the paper's widths took 0.81 s against 2.25 s in
      fp32 channels_last (2-core Sapphire Rapids, 2026-12-02).
    - AVX-512 BF16 without AMX: measured at start-up (:func:`_bf16_measured_faster`, about a
      second), because it went both ways on such CPUs: 4.57 s against 3.71 s per paper-width step
      on one (bf16 slower), 1.80 s against 3.41 s on an AMD EPYC Zen 4 (issue 33).
    - Neither: no; bf16 is emulated there and several times slower.
    """
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True
    if "avx512_bf16" not in flags:
        return False
    return _bf16_measured_faster()


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype ``train.amp`` means on ``device`` (None: fp32).

    ``auto`` is what runs fastest, which depends on the processor: on a CPU, bf16 where
    :func:`cpu_prefers_bf16` says so, else fp32. On GPUs that have it, bf16 (fp32's range, so no
    loss scaler); on older GPUs fp16, with a loss scaler."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_prefers_bf16() else None
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_factory(
    device: torch.device, amp: str = "auto"
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """A zero-argument context factory for mixed precision (:func:`amp_dtype`)."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str = "auto") -> torch.amp.GradScaler | None:
    """A loss scaler when ``train.amp`` means fp16 (its 5-bit exponent underflows small
    gradients); None for fp32 and bf16. One per optimiser: each phase skips its own steps
    with inf/NaN gradients and adapts its own scale."""
    if amp_dtype(device, amp) != torch.float16:
        return None
    return torch.amp.GradScaler(device.type)


def preserve_rng(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` on a fork of torch's global RNG state (CPU and CUDA), restored afterwards:
    fitting functions seed torch for their own initial weights without changing the random
    stream of their caller (a training run stays bit-exact across a metric computed mid-run)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            return fn(*args, **kwargs)

    return wrapper


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG's state as tensors and plain data (loadable with weights_only=True)."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, _, gauss = random.getstate()
    random.setstate((version, tuple(state["python"]), gauss))
