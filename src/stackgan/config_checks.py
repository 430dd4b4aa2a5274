"""Checks of an :class:`~stackgan.config.ExperimentConfig` that span its sections: a loss that
needs text or a re-encodable caption set, and the Stage-II / StackGAN++ crop and super-resolution
options, which depend on the model's version, stage and sizes, and the sizes the projected D
can read. Each section's own ranges are checked by its dataclass; these run once the whole
config is built. Used by :mod:`stackgan.config`; :func:`image_sizes` and
:func:`discriminator_sizes` also by :mod:`stackgan.models.registry`, which builds from them.
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
    _check_projected(cfg)


def image_sizes(cfg: ExperimentConfig) -> list[int]:
    """Resolutions the generator draws for its discriminators, ascending (one per D)."""
    m = cfg.model
    if m.version == "v2":
        return [m.stage1_img_size * 2**i for i in range(m.num_branches)]
    return [m.stage1_img_size if m.stage == 1 else m.stage2_img_size]


def discriminator_sizes(cfg: ExperimentConfig) -> list[int]:
    """The image size each discriminator is built for: :func:`image_sizes`, except that under
    ``train.crop`` a tree's last D and v1 Stage-II's D judge squares of that size."""
    sizes = image_sizes(cfg)
    if cfg.train.crop and (cfg.model.version == "v2" or cfg.model.stage == 2):
        sizes[-1] = cfg.train.crop
    return sizes


def projected_input(size: int, crop: int, feature_size: int) -> tuple[int, int]:
    """What the projected D does with ``size``-pixel images: the square it crops (``crop`` when
    smaller than the image, else 0: whole images) and the size its frozen network reads
    (``feature_size``, else the crop, else the image). Used by the config check and by
    :class:`~stackgan.models.projected.FeatureDiscriminator`."""
    used = crop if 0 < crop < size else 0
    return used, feature_size or used or size


def _check_projected(cfg: ExperimentConfig) -> None:
    """The projected D's frozen network reads 32 px or more (its stride), and a ``d_crop`` must
    be smaller than some image it judges, or it would crop nothing."""
    m = cfg.model
    if m.d_type != "projected":
        return
    sizes = discriminator_sizes(cfg)
    if m.d_crop and m.d_crop >= max(sizes):
        raise ConfigError(
            f"model.d_crop {m.d_crop} crops nothing: the largest image a discriminator judges "
            f"is {max(sizes)} px; use 0 or a size below it"
        )
    for size in sizes:
        read = projected_input(size, m.d_crop, m.d_feature_size)[1]
        if read < 32:
            raise ConfigError(
                f"the projected D reads {read} px images at its {size} px discriminator and "
                f"its frozen network needs 32 px or more: set model.d_feature_size (e.g. 64)"
                + (" or a larger train.crop" if cfg.train.crop and size == sizes[-1] else "")
            )


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
        last = image_sizes(cfg)[-1]
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
