"""v1 Stage-II trained as text-conditioned super-resolution, on real pairs and on crops.

Not in the paper. The paper trains Stage-II only on the frozen Stage-I's images, so Stage-II
learns what detail to add from a discriminator alone, and at 256 px on a CPU that D is most of
the cost. Cascaded diffusion models (Ho et al., 2021; Saharia et al., 2022) train each
super-resolution stage on real images taken down to the lower stage's size, with
"conditioning augmentation" (blur and noise) so that it also accepts the lower stage's
imperfect outputs. Here (``train.sr_real_fraction``):

- a fraction of each batch's Stage-II inputs are the real training photos, area-downsampled
  to Stage-I's size, blurred and noised by a random amount (:func:`degrade`), and G's output
  for them is also pulled to the real photo by an L1 loss (``loss.recon_weight``);
- the rest are Stage-I's images of the same captions, as in the paper (at 0: the paper).

And on crops (``train.crop``): G is fully convolutional with its text tiled over its code, so it
refines a crop of its input as well as the whole; D, built for the crop's size, judges crops of
the real and generated images. A step then costs about (crop / 256)^2 of a whole image's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.models.layers import crop_squares, random_corners
from stackgan.models.v1 import GeneratorOutput
from stackgan.train.state import TrainState


@dataclass
class Stage2Batch:
    """One iteration's Stage-II images.

    out: G's output: [its low-resolution inputs, its images] (crops under ``train.crop``).
    real: D's real images, the crops of the batch's photos at the same places.
    target: the real photo (crop) for each output, where its input was that photo degraded;
        None when no input was real.
    is_real: (B,) bool, which inputs were real photos.
    """

    out: GeneratorOutput
    real: torch.Tensor
    target: torch.Tensor | None
    is_real: torch.Tensor


def gaussian_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (B, C, H, W) with its own Gaussian of std ``sigma`` (B,) pixels
    (separable, reflect padding; sigma 0 leaves the image as it is)."""
    b, c, h, w = img.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32)
    s = sigma.to(img.device, torch.float32).clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, K); a tiny sigma: a delta
    k = k.repeat_interleave(c, 0)  # (B*C, K), one per channel of each image
    flat = img.float().reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, k[:, None, None, :], groups=b * c)  # along the width
    flat = F.conv2d(flat, k[:, None, :, None], groups=b * c)  # along the height
    return flat.reshape(b, c, h, w).to(img.dtype)


def degrade(
    hi: torch.Tensor, size: int, blur: float, noise: float, gen: torch.Generator
) -> torch.Tensor:
    """Real photos (B, 3, S, S) in [-1, 1] -> (B, 3, size, size): area-downsampled, then each
    blurred with a Gaussian of std uniform in [0, blur] pixels and given Gaussian noise of std
    uniform in [0, noise] (the draws from ``gen``, a CPU generator), clamped to [-1, 1]."""
    b = hi.shape[0]
    lo = F.interpolate(hi.float(), size=(size, size), mode="area")
    if blur > 0:
        lo = gaussian_blur(lo, torch.rand(b, generator=gen) * blur)
    if noise > 0:
        std = (torch.rand(b, generator=gen) * noise).to(lo.device)
        eps = torch.randn(lo.shape, generator=gen).to(lo.device)
        lo = lo + std[:, None, None, None] * eps
    return lo.clamp(-1, 1).to(hi.dtype)


def random_crops(
    lo: torch.Tensor, hi: torch.Tensor, crop: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of ``crop`` pixels of each ``hi`` image and the matching crops of ``lo`` (the same
    place at its size, ``hi.size / lo.size`` times smaller), one random place per image."""
    ratio = hi.shape[-1] // lo.shape[-1]
    lo_crop = crop // ratio
    corners = random_corners(lo.shape[0], lo.shape[-1] - lo_crop + 1, gen)
    return crop_squares(lo, corners, lo_crop), crop_squares(hi, corners * ratio, crop)


def stage2_images(
    generator: nn.Module,
    stage1: nn.Module,
    z: torch.Tensor,
    text: torch.Tensor,
    eps: torch.Tensor | None,
    real_hi: torch.Tensor,
    gen: torch.Generator,
    *,
    real_fraction: float,
    blur: float,
    noise: float,
    crop: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Stage2Batch:
    """One iteration's Stage-II images: the inputs (Stage-I's images of ``z`` and ``text``,
    with a ``real_fraction`` of them replaced by the batch's real photos degraded), cropped
    with the real photos when ``crop``, then refined by ``generator`` (called with
    ``lo_img``; it may be a DDP or compiled wrapper of a Stage2Generator)."""
    with torch.no_grad():
        lo = stage1(z, text, eps).images[-1]
        b, size = lo.shape[0], lo.shape[-1]
        is_real = torch.rand(b, generator=gen) < real_fraction
        if bool(is_real.any()):
            real_lo = degrade(real_hi, size, blur, noise, gen).to(lo.dtype)
            lo = torch.where(is_real.to(lo.device)[:, None, None, None], real_lo, lo)
    hi = real_hi
    if crop:
        lo, hi = random_crops(lo, hi, crop, gen)
    lo = lo.contiguous(memory_format=memory_format)
    out: GeneratorOutput = generator(z, text, eps, lo_img=lo)
    target = hi if bool(is_real.any()) else None
    return Stage2Batch(out, hi, target, is_real.to(real_hi.device))


def recon_loss(fake: torch.Tensor, target: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance to the real photo over the outputs whose input was that photo."""
    per_image = (fake.float() - target.float()).abs().flatten(1).mean(1)
    mask = is_real.to(per_image.dtype)
    return (per_image * mask).sum() / mask.sum().clamp_min(1)


def uses_superres(cfg: ExperimentConfig) -> bool:
    """Whether a run's Stage-II iterations go through :func:`stage2_images`."""
    v1 = cfg.model.version == "v1"
    return v1 and (cfg.train.sr_real_fraction > 0 or cfg.train.crop > 0)


def config_images(
    cfg: ExperimentConfig,
    state: TrainState,
    z: torch.Tensor,
    text: torch.Tensor | None,
    eps: torch.Tensor | None,
    real_hi: torch.Tensor,
    memory_format: torch.memory_format,
) -> Stage2Batch:
    """:func:`stage2_images` for the training loop: the run's generator and its frozen
    Stage-I, the data stream's generator, and the options of ``cfg.train``."""
    tc = cfg.train
    stage1 = state.generator.stage1
    if text is None or not isinstance(stage1, nn.Module):
        raise ValueError("Stage-II super-resolution training needs a v1 Stage-II with text")
    return stage2_images(
        state.g_phase.trained,
        stage1,
        z,
        text,
        eps,
        real_hi,
        state.data_gen,
        real_fraction=tc.sr_real_fraction,
        blur=tc.sr_blur,
        noise=tc.sr_noise,
        crop=tc.crop,
        memory_format=memory_format,
    )
