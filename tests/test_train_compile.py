"""``train.compile``: a compiled training run gives the eager run's losses (marker ``slow``:
compiling on a CPU takes a minute or more; the CUDA-graph variant is in test_gpu.py)."""

import json

import pytest

from stackgan.checkpoint import load_checkpoint
from stackgan.train import train

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def _losses(run_dir):
    recs = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(("d_", "g_", "kl"))} for r in recs]


def test_compiled_steps_give_the_eager_losses(tiny_shapes, tmp_path):
    extra = {"train.total_iters": 4, "train.tick_iters": 1, "train.seed": 3}
    extra.update({"loss.r1_gamma": 0.1, "loss.r1_interval": 2})  # R1 runs eagerly
    train(tiny_config(tiny_shapes, **extra), tmp_path / "eager")
    train(tiny_config(tiny_shapes, **extra, **{"train.compile": "default"}), tmp_path / "comp")
    eager, comp = _losses(tmp_path / "eager"), _losses(tmp_path / "comp")
    assert len(eager) == len(comp) == 4 and eager[0].keys() == comp[0].keys()
    for a, b in zip(eager, comp):
        for k in a:  # fp32 on both sides: only the order of fused operations differs
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4), k
    # the checkpoint keeps the plain parameter names (no torch.compile prefix)
    ckpt = load_checkpoint(tmp_path / "comp" / "checkpoint-latest.pt")
    assert not any("_orig_mod" in k for k in ckpt["generator"])
