"""BigGAN's standing statistics for the EMA generator (train.standing_stats, export
--standing-stats)."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from torch import nn

from stackgan.checkpoint import load_export
from stackgan.cli import main
from stackgan.models.registry import build_generator
from stackgan.train.ema import standing_stats

from .conftest import tiny_config


def _norms(g: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in g.state_dict().items() if "running_" in k}


def test_statistics_are_the_average_over_the_batches_for_the_ema_weights(tiny_shapes):
    cfg = tiny_config(tiny_shapes)
    g = build_generator(cfg).eval()
    before = _norms(g)
    pool = torch.randn(10, cfg.text.dim)
    rng = torch.get_rng_state()
    standing_stats(g, pool, cfg.model.z_dim, num_batches=3, batch_size=8, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's stream is untouched
    assert not g.training
    after = _norms(g)
    assert any(not torch.allclose(before[k], after[k]) for k in before)
    bn = next(m for m in g.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d))
    assert bn.momentum == 0.1 and bn.num_batches_tracked == 3  # momentum restored
    again = build_generator(cfg).eval()
    again.load_state_dict(g.state_dict())
    standing_stats(again, pool, cfg.model.z_dim, num_batches=3, batch_size=8, seed=1)
    assert all(torch.equal(after[k], v) for k, v in _norms(again).items())  # deterministic


def test_a_stage2_keeps_its_frozen_stage1_statistics(tiny_shapes):
    cfg = tiny_config(tiny_shapes, stage=2)
    g = build_generator(cfg).eval()
    before = _norms(g)
    standing_stats(g, torch.randn(10, cfg.text.dim), cfg.model.z_dim, 2, batch_size=4)
    after = _norms(g)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("stage1."))
    assert any(not torch.equal(before[k], after[k]) for k in before if not k.startswith("stage1."))


def test_export_with_standing_stats(tiny_shapes, tmp_path):
    from stackgan.train import train

    model = train(tiny_config(tiny_shapes), tmp_path / "run")
    out = tmp_path / "ss.safetensors"
    args = ["export", str(model), "--out", str(out), "--standing-stats", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "needs --data" in r.output
    r = CliRunner().invoke(main, [*args, "--data", str(tiny_shapes)])
    assert r.exit_code == 0, r.output
    (a, _), (b, _) = load_export(model), load_export(out)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if "running_mean" in k)
    assert all(torch.equal(a[k], b[k]) for k in a if "running_" not in k and "num_batches" not in k)


def test_training_with_standing_stats(tiny_shapes, tmp_path):
    from stackgan.train import train

    cfg = tiny_config(tiny_shapes, **{"train.standing_stats": 2, "train.total_iters": 2})
    train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").is_file()
