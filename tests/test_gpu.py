"""CUDA checks (marker ``gpu``: deselected by default, run with ``pytest -m gpu`` on a GPU machine).

The same paths ran on an H100 through the CLI (three Stage-I, two Stage-II and five v2 runs with
the matching loss, fp32 + channels_last); these tests pin them down at tiny widths, with bf16.
"""

import json

import numpy as np
import pytest
import torch

from stackgan.checkpoint import load_checkpoint, load_export
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler
from stackgan.train import train

from .conftest import tiny_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = {"train.device": "cuda", "train.channels_last": True}


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_stage1_and_stage2_train_on_cuda_with_the_matching_loss(tiny_shapes, tmp_path, amp):
    extra = {**CUDA, "train.amp": amp, "loss.match_weight": 1.0, "loss.match_steps": 3}
    extra["train.total_iters"] = 2
    s1 = train(tiny_config(tiny_shapes, **extra), tmp_path / "s1")
    rec = json.loads((tmp_path / "s1" / "stats.jsonl").read_text().splitlines()[-1])
    assert all(torch.isfinite(torch.tensor(float(rec[k]))) for k in ("d_real", "g_adv", "match"))
    # the checkpoint and export load on a CPU-only reader: tensors were moved off the device
    ckpt = load_checkpoint(tmp_path / "s1" / "checkpoint-latest.pt")
    assert all(v.device.type == "cpu" for v in ckpt["generator_ema"].values())
    s2_extra = {**extra, "model.stage1_checkpoint": str(s1)}
    s2 = train(tiny_config(tiny_shapes, stage=2, **s2_extra), tmp_path / "s2")
    state, cfg = load_export(s2)
    g = build_generator(cfg)
    g.load_state_dict(state)
    out = g.eval()(torch.randn(2, cfg.model.z_dim), torch.randn(2, cfg.text.dim))
    assert torch.isfinite(out.images[-1]).all() and out.images[-1].shape[-1] == 32


def test_v2_trains_on_cuda_in_bf16(tiny_shapes, tmp_path):
    extra = {**CUDA, "train.amp": "bf16", "model.version": "v2", "model.num_branches": 3}
    export = train(tiny_config(tiny_shapes, **extra, **{"model.ngf": 8}), tmp_path / "v2")
    sampler = Text2ImageSampler.from_pretrained(export, device="cuda")
    images = sampler.generate(torch.randn(2, sampler.cfg.text.dim), seed=0)
    assert [t.shape[-1] for t in images] == [16, 32, 64]
    assert all(torch.isfinite(t).all() for t in images)


def test_bundled_model_samples_the_same_on_cuda_and_cpu():
    caption = ["a big red star on a sky blue background"]
    cpu = Text2ImageSampler.from_pretrained(device="cpu")(caption, seed=0)
    gpu = Text2ImageSampler.from_pretrained(device="cuda")(caption, seed=0)
    a = torch.from_numpy(np.asarray(cpu.images[0], dtype=np.float32))
    b = torch.from_numpy(np.asarray(gpu.images[0], dtype=np.float32))
    # same noise (drawn on the CPU) and weights; kernels differ, so pixels agree to a few levels
    assert (a - b).abs().mean() < 4.0


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_cuda_steps_give_the_eager_losses_within_bf16_tolerance(
    tiny_shapes, tmp_path, mode
):
    extra = {**CUDA, "train.amp": "bf16", "train.total_iters": 4, "train.tick_iters": 1}
    train(tiny_config(tiny_shapes, **extra), tmp_path / "eager")
    train(tiny_config(tiny_shapes, **extra, **{"train.compile": mode}), tmp_path / "comp")
    for name in ("eager", "comp"):
        assert (tmp_path / name / "stats.jsonl").exists()
    read = [
        [json.loads(x) for x in (tmp_path / n / "stats.jsonl").read_text().splitlines()]
        for n in ("eager", "comp")
    ]
    for a, b in zip(*read):
        for k in ("d_loss", "g_loss", "kl"):
            assert b[k] == pytest.approx(a[k], rel=3e-2, abs=3e-2), k
