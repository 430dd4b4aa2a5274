"""What a training run builds before its first iteration: the data with its caption
embeddings (and colour-swapped negatives), the networks, and the frozen image matcher of the
matching loss. Called by :func:`stackgan.train.loop.train`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stackgan.checkpoint import load_generator_weights, stage1_weights
from stackgan.config import ConfigError, ExperimentConfig
from stackgan.config_checks import image_sizes
from stackgan.data.dataset import TextImageDataset
from stackgan.data.folder import ImageFolderDataset
from stackgan.data.layouts import detect_layout, read_index
from stackgan.models.discriminator import BaseDiscriminator
from stackgan.models.layers import crop_squares, random_corners
from stackgan.models.registry import build_discriminators, build_generator
from stackgan.pretrained import resolve_model
from stackgan.text.base import is_encoder_file
from stackgan.text.encoders import dataset_embeddings
from stackgan.text.negatives import color_swapped_captions
from stackgan.text.trainable import TrainedTextEncoder
from stackgan.train.matching import fit_image_matcher, load_image_matcher, save_image_matcher
from stackgan.train.rundir import MATCHER_FILE

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """The dataset and what the loop draws text from.

    sizes: real-image resolutions, one per discriminator, ascending.
    emb: (num_captions, D) caption embeddings on the device; None without text.
    swap_emb, swap_ok: embeddings of the colour-swapped captions (``loss.swap_negatives``) and
        which captions named a colour to swap.
    text_encoder: a trained encoder file, read once: the embeddings, the training metric and
        every export use this copy.
    """

    ds: TextImageDataset | ImageFolderDataset
    sizes: list[int]
    emb: torch.Tensor | None = None
    swap_emb: torch.Tensor | None = None
    swap_ok: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    text_encoder: TrainedTextEncoder | None = None

    @property
    def text(self) -> TextImageDataset | None:
        """The dataset when it has captions (None in unconditional mode)."""
        return self.ds if isinstance(self.ds, TextImageDataset) and self.emb is not None else None


def build_data(cfg: ExperimentConfig, device: torch.device) -> TrainData:
    """The training split, its caption embeddings (cached beside the images) and, with
    ``loss.swap_negatives``, the colour-swapped captions' embeddings."""
    tc, dc = cfg.train, cfg.data
    sizes = image_sizes(cfg)
    if not cfg.model.conditional:  # StackGAN++ unconditional mode: any folder of images
        # a dataset with splits (CUB, flowers, COCO) trains on its split's images alone, so the
        # test images FID is measured against are never trained on
        layout = detect_layout(Path(dc.root)) if dc.layout == "auto" else dc.layout
        split_paths = None
        if layout != "folder":
            split_paths = read_index(dc.root, dc.split, layout, dc.max_images).image_paths
        folder = ImageFolderDataset(
            dc.root,
            sizes[-1],
            random_flip=dc.random_flip,
            max_images=dc.max_images,
            cache_dir=dc.cache_dir or None,
            progress=tc.progress,
            paths=split_paths,
        )
        logger.info(
            "%d images (%s), no text (unconditional)",
            len(folder),
            f"{dc.split} split of the {layout} layout" if split_paths else "the whole folder",
        )
        return TrainData(folder, sizes)
    ds = TextImageDataset(
        dc.root,
        dc.split,
        sizes[-1],
        bbox_crop=dc.bbox_crop,
        random_crop=dc.random_crop,
        random_flip=dc.random_flip,
        max_images=dc.max_images,
        cache_dir=dc.cache_dir or None,
        progress=tc.progress,
        layout=dc.layout,
    )
    enc = None
    if is_encoder_file(cfg.text.encoder):
        enc = TrainedTextEncoder(cfg.text.encoder, device=device)
    emb = dataset_embeddings(
        ds.captions,
        cfg.text.encoder,
        ds.cache_dir,
        embeddings_file=cfg.text.embeddings_file,
        caption_counts=ds.caption_counts.tolist(),
        device=device,
        progress=tc.progress,
        encoder=enc,
    )
    if emb.shape[1] != cfg.text.dim:
        raise ConfigError(
            f"text.dim is {cfg.text.dim} but the {cfg.text.encoder} encoder gives "
            f"{emb.shape[1]}-d embeddings"
        )
    emb = emb.to(device, torch.float32)
    logger.info("%d images, %d captions, %d-d text", len(ds), ds.num_captions, emb.shape[1])
    data = TrainData(ds, sizes, emb, text_encoder=enc)
    if cfg.loss.swap_negatives > 0:
        data.swap_emb, data.swap_ok = _swapped_embeddings(cfg, ds, device, enc)
    return data


def _swapped_embeddings(
    cfg: ExperimentConfig,
    ds: TextImageDataset,
    device: torch.device,
    text_encoder: TrainedTextEncoder | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every caption's colour-swapped versions (``loss.swap_variants`` per
    caption, caption-major; cached like the captions' own), and which captions named a colour
    to swap."""
    k = cfg.loss.swap_variants
    swapped, ok = color_swapped_captions(ds.captions, seed=cfg.train.seed, variants=k)
    if not ok.any():
        raise ConfigError(
            "loss.swap_negatives: no caption of this dataset names a colour "
            "(stackgan.text.negatives.COLOR_FAMILIES)"
        )
    first = int(ok.nonzero()[0])
    logger.info(
        "colour-swapped negatives for %.1f%% of captions, e.g. %r -> %r",
        100 * float(ok.float().mean()),
        ds.captions[first],
        swapped[first * k],
    )
    swap_emb = dataset_embeddings(
        swapped,
        cfg.text.encoder,
        ds.cache_dir,
        device=device,
        progress=cfg.train.progress,
        encoder=text_encoder,
    )
    return swap_emb.to(device, torch.float32), ok


def build_networks(
    cfg: ExperimentConfig, device: torch.device, memory_format: torch.memory_format
) -> tuple[nn.Module, list[BaseDiscriminator], nn.Module]:
    """(generator, discriminators, g_ema) on ``device``. A v1 Stage-II generator gets the
    frozen Stage-I that ``model.stage1_checkpoint`` names."""
    generator = build_generator(cfg)
    if cfg.model.version == "v1" and cfg.model.stage == 2:
        _load_stage1(cfg, generator)
    discriminators = build_discriminators(cfg)
    # (torch's stubs lack Module.to(memory_format=...), which exists at run time)
    generator.to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
    for d in discriminators:
        d.to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    n_g = sum(p.numel() for p in generator.parameters() if p.requires_grad)
    n_d = sum(p.numel() for d in discriminators for p in d.parameters())
    logger.info("generator: %.2fM trainable parameters; discriminator: %.2fM", n_g / 1e6, n_d / 1e6)
    return generator, discriminators, g_ema


def _load_stage1(cfg: ExperimentConfig, generator: nn.Module) -> None:
    if not cfg.model.stage1_checkpoint:
        raise ConfigError("model.stage1_checkpoint is required for stage 2")
    # a bundled model's name (`birds`) means the Stage-I that ships in the package
    s1_state, s1_cfg = load_generator_weights(resolve_model(cfg.model.stage1_checkpoint))
    if s1_cfg.model.version != "v1":
        raise ConfigError(
            f"model.stage1_checkpoint {cfg.model.stage1_checkpoint} is not a v1 model"
        )
    s1_state = stage1_weights(s1_state, s1_cfg)  # a Stage-II model: its frozen Stage-I
    if s1_cfg.text.dim != cfg.text.dim or s1_cfg.text.encoder != cfg.text.encoder:
        raise ConfigError(
            f"Stage-I model uses {s1_cfg.text.encoder} ({s1_cfg.text.dim}-d text) but this "
            f"config uses {cfg.text.encoder} ({cfg.text.dim}-d)"
        )
    try:
        generator.stage1.load_state_dict(s1_state)  # type: ignore[union-attr]
    except RuntimeError as exc:
        raise ConfigError(
            f"{cfg.model.stage1_checkpoint} does not match model.ngf/z_dim/cond_dim: {exc}"
        ) from exc


def image_matcher(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: TrainData,
    device: torch.device,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
) -> nn.Module | None:
    """The frozen image encoder of ``loss.match_weight`` (None when the loss is off): the run's
    own (a resume reads it back), or fitted on the training pairs and saved beside the
    checkpoints."""
    ds, emb = data.text, data.emb
    if cfg.loss.match_weight <= 0 or ds is None or emb is None:
        return None
    path = run_dir / MATCHER_FILE
    if path.exists():
        logger.info("image matcher from %s", path)
        return load_image_matcher(path, device)
    bs, sizes = cfg.train.batch_size, data.sizes
    tree_crop = cfg.model.version == "v2" and bool(cfg.train.crop)
    if tree_crop:  # the matching loss reads the whole image before the cropped branch
        sizes = sizes[:-1]

    def sample(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(ds), (bs,), generator=gen)
        caps = ds.random_captions(idx, gen)
        images = ds.images_at(idx, sizes[-1:], gen)[0]
        if cfg.train.crop and not tree_crop:  # v1 Stage-II: fitted on crops like G's
            room = images.shape[-1] - cfg.train.crop + 1
            images = crop_squares(images, random_corners(len(images), room, gen), cfg.train.crop)
        return images, emb[caps.to(emb.device)]

    logger.info("fitting the image matcher (%d steps)", cfg.loss.match_steps)
    matcher = fit_image_matcher(
        sample,
        emb.shape[1],
        sizes[-1],
        cfg.loss.match_steps,
        device,
        seed=cfg.train.seed,
        augment=augment,
        progress=cfg.train.progress,
    )
    save_image_matcher(path, matcher)
    return matcher
