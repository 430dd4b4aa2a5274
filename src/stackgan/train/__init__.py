"""Training: ``train(cfg, run_dir)``, the D/G steps and the EMA update."""

from stackgan.train.ema import update_ema
from stackgan.train.loop import make_run_dir, train
from stackgan.train.steps import d_step, g_step

__all__ = ["d_step", "g_step", "make_run_dir", "train", "update_ema"]
