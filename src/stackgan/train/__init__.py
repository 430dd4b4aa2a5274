"""Training: ``train(cfg, run_dir)``, the D/G steps and the EMA update."""

from stackgan.train.ema import update_ema
from stackgan.train.loop import train
from stackgan.train.rundir import make_run_dir
from stackgan.train.steps import d_step, g_step

__all__ = ["d_step", "g_step", "make_run_dir", "train", "update_ema"]
