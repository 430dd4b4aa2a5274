"""Factories: turn a config into modules. Modules themselves never read a config."""

from __future__ import annotations

from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.config_checks import discriminator_sizes, image_sizes
from stackgan.models.discriminator import BaseDiscriminator, Discriminator
from stackgan.models.v1 import Stage1Generator, Stage2Generator
from stackgan.models.v2 import TreeGenerator

JOINT_KERNEL = {"v1": 1, "v2": 3}  # v1: TF release's 1x1 joint conv; v2: reference jointConv 3x3


def _text_dim(cfg: ExperimentConfig) -> int:
    """Text size the networks take; 0 in unconditional mode."""
    return cfg.text.dim if cfg.model.conditional else 0


def build_generator(cfg: ExperimentConfig, stage: int | None = None) -> nn.Module:
    """The generator ``cfg`` describes: v1 Stage-I, v1 Stage-II (wrapping a freshly built
    Stage-I, whose weights the caller loads) or the v2 tree."""
    m = cfg.model
    if m.version == "v2":
        return TreeGenerator(
            _text_dim(cfg),
            m.z_dim,
            m.cond_dim,
            m.ngf,
            m.num_branches,
            m.num_res_blocks,
            m.stage1_img_size,
        )
    stage = m.stage if stage is None else stage
    relu = m.ca_activation == "relu"
    stage1 = Stage1Generator(
        cfg.text.dim, m.z_dim, m.cond_dim, m.ngf, m.stage1_img_size, ca_relu=relu
    )
    if stage == 1:
        return stage1
    return Stage2Generator(
        stage1,
        m.cond_dim,
        m.ngf2,
        m.num_res_blocks,
        m.stage2_img_size,
        skip=m.stage2_skip,
        ca_relu=relu,
    )


def build_discriminators(cfg: ExperimentConfig) -> list[BaseDiscriminator]:
    """One discriminator per trained resolution: v1 one (Stage-II's also has an unconditional
    head, as the reference code); v2 one per branch, each with both heads (the paper's joint
    conditional + unconditional loss)."""
    m = cfg.model
    kernel = m.joint_kernel or JOINT_KERNEL[m.version]

    backbone = None
    if m.d_type == "projected":  # one frozen network, shared by the tree's discriminators
        from stackgan.models.efficientnet import EfficientNetLite0Features

        backbone = EfficientNetLite0Features()

    def disc(size: int, text_dim: int, ndf: int, uncond: bool) -> BaseDiscriminator:
        if backbone is not None:
            from stackgan.models.projected import FeatureDiscriminator

            return FeatureDiscriminator(
                size,
                text_dim,
                ndf,
                m.disc_text_dim,
                uncond,
                m.d_feature_size,
                backbone,
                m.d_crop,
            )
        return Discriminator(
            size, text_dim, ndf, m.disc_text_dim, uncond, kernel, m.d_spectral_norm, m.d_projection
        )

    sizes = discriminator_sizes(cfg)  # under train.crop the last D judges squares
    if m.version == "v2":
        return [disc(size, _text_dim(cfg), m.ndf, True) for size in sizes]
    ndf, uncond = (m.ndf, False) if m.stage == 1 else (m.ndf2, True)
    return [disc(sizes[0], cfg.text.dim, ndf, uncond)]


def output_size(cfg: ExperimentConfig) -> int:
    """The generator's highest resolution."""
    return image_sizes(cfg)[-1]
