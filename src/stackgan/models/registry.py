"""Factories: turn a config into modules. Modules themselves never read a config."""

from __future__ import annotations

from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.models.v1 import Discriminator, Stage1Generator, Stage2Generator


def build_generator(cfg: ExperimentConfig, stage: int | None = None) -> nn.Module:
    """The generator of ``cfg.model.stage`` (Stage-II wraps a freshly built Stage-I, whose weights
    the caller loads)."""
    m, text_dim = cfg.model, cfg.text.dim
    stage = m.stage if stage is None else stage
    stage1 = Stage1Generator(text_dim, m.z_dim, m.cond_dim, m.ngf, m.stage1_img_size)
    if stage == 1:
        return stage1
    return Stage2Generator(stage1, m.cond_dim, m.ngf2, m.num_res_blocks, m.stage2_img_size)


def build_discriminator(cfg: ExperimentConfig) -> Discriminator:
    m = cfg.model
    if m.stage == 1:
        return Discriminator(m.stage1_img_size, cfg.text.dim, m.ndf, m.disc_text_dim, uncond=False)
    # Stage-II's discriminator also has an unconditional head (reference code).
    return Discriminator(m.stage2_img_size, cfg.text.dim, m.ndf2, m.disc_text_dim, uncond=True)


def output_size(cfg: ExperimentConfig) -> int:
    return cfg.model.stage1_img_size if cfg.model.stage == 1 else cfg.model.stage2_img_size
