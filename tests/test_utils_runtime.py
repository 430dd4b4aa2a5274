"""utils/runtime: devices, and library code that leaves process-wide state alone."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from stackgan.metrics.inception_score import train_head
from stackgan.text.encoders import build_encoder
from stackgan.utils.runtime import DeviceError, resolve_device


def test_fitting_functions_leave_the_global_rng_as_they_found_it():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    feats = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    train_head(feats, np.arange(40) % 4, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    # and its result does not depend on the caller's stream
    torch.manual_seed(999)
    a = train_head(feats, np.arange(40) % 4, seed=7)
    torch.manual_seed(5)
    b = train_head(feats, np.arange(40) % 4, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_minilm_loads_from_its_package_without_network_or_env_changes(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network call attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    env = dict(os.environ)
    emb = build_encoder("minilm").encode(["a small red bird"])
    assert emb.shape == (1, 384)
    added = set(os.environ) - set(env)  # (torch's own imports set a few KMP_/TORCHINDUCTOR_)
    assert not {k for k in added if k.startswith(("HF_", "TRANSFORMERS_"))}, added


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_auto_precision_follows_what_the_processor_does(monkeypatch):
    from stackgan.utils import runtime

    cpu = torch.device("cpu")

    def choose(flags: set[str], measured_faster: bool) -> torch.dtype | None:
        monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(runtime, "_bf16_measured_faster", lambda: measured_faster)
        runtime.cpu_prefers_bf16.cache_clear()
        try:
            return runtime.amp_dtype(cpu, "auto")
        finally:
            runtime.cpu_prefers_bf16.cache_clear()

    assert choose({"avx2", "amx_bf16", "avx512_bf16"}, False) == torch.bfloat16  # AMX tiles
    assert choose({"avx2", "avx512_bf16"}, True) == torch.bfloat16  # measured faster
    assert choose({"avx2", "avx512_bf16"}, False) is None  # measured slower
    assert choose({"avx2"}, True) is None  # bf16 emulated: never
    assert (
        runtime.amp_dtype(cpu, "bf16") == torch.bfloat16 and runtime.amp_dtype(cpu, "off") is None
    )


def test_bf16_measurement_returns_a_choice():
    from stackgan.utils.runtime import _bf16_measured_faster

    assert _bf16_measured_faster(reps=1) in (True, False)
