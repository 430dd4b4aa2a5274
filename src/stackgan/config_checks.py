"""Checks of an :class:`~stackgan.config.ExperimentConfig` that span its sections: a loss that
needs text or a re-encodable caption set, and the Stage-II / StackGAN++ crop and super-resolution
options, which depend on the model's version, stage and sizes. Each section's own ranges are
checked by its dataclass; these run once the whole config is built. Used by
:mod:`stackgan.config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackgan.config_parse import ConfigError

if TYPE_CHECKING:
    from stackgan.config import ExperimentConfig


def check_across_sections(cfg: ExperimentConfig) -> None:
    """Raise :class:`ConfigError` for options that do not fit together."""
    if cfg.loss.match_weight > 0 and not cfg.model.conditional:
        raise ConfigError("loss.match_weight needs text: an unconditional model has none")
    if cfg.loss.swap_negatives > 0 and cfg.text.encoder == "precomputed":
        raise ConfigError(
            "loss.swap_negatives needs a text encoder that can encode new captions; "
            "text.encoder=precomputed only has the stored embeddings"
        )
    _check_crop_training(cfg)


def _check_crop_training(cfg: ExperimentConfig) -> None:
    """v1 Stage-II's super-resolution and crops, and a StackGAN++ tree's last branch on crops."""
    m, t = cfg.model, cfg.train
    v1_stage2 = m.version == "v1" and m.stage == 2
    tree = m.version == "v2" and m.num_branches > 1
    if (t.sr_real_fraction > 0 or cfg.loss.recon_weight > 0) and not v1_stage2:
        raise ConfigError(
            "train.sr_real_fraction and loss.recon_weight are for v1 Stage-II "
            "(model.version v1, model.stage 2)"
        )
    if t.crop and not (v1_stage2 or tree):
        raise ConfigError(
            "train.crop is for v1 Stage-II or a StackGAN++ tree of 2 or more branches"
        )
    if cfg.loss.recon_weight > 0 and t.sr_real_fraction == 0:
        raise ConfigError("loss.recon_weight needs train.sr_real_fraction > 0 (real pairs)")
    if t.crop and tree:
        last = m.stage1_img_size * 2 ** (m.num_branches - 1)
        if t.crop & (t.crop - 1) or not 8 <= t.crop < last:
            raise ConfigError(
                f"train.crop must be a power of two in 8..{last // 2} (below the last "
                f"branch's {last} px), got {t.crop}"
            )
    elif t.crop:
        ratio = m.stage2_img_size // m.stage1_img_size
        in_crop = t.crop // max(ratio, 1)
        if t.crop & (t.crop - 1) or not 8 <= t.crop <= m.stage2_img_size or in_crop % 4:
            raise ConfigError(
                f"train.crop must be a power of two in 8..{m.stage2_img_size} whose input "
                f"crop (crop / {ratio}) is a multiple of 4, got {t.crop}"
            )
