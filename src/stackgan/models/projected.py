"""A discriminator on frozen pretrained features (Projected GAN, Sauer et al., NeurIPS 2021;
Vision-aided GAN, Kumari et al., CVPR 2022). Not in either StackGAN paper.

D's image encoder is not learned: the images go through a frozen ImageNet network
(EfficientNet-Lite0, :mod:`stackgan.models.efficientnet`), and light trainable heads, one per
feature scale, judge its features. A D that starts from features which already tell a bird's
shape from a smudge needs far fewer images to give G useful gradients than one that learns
vision from the training set, which is what a small dataset and a CPU budget lack. Projected
GAN's heads are multi-scale patch discriminators; here each also reads the text by projection
(Miyato & Koyama, 2018): logit(x, y) = u(h(x, y)) + <V t, h(x, y)> / sqrt(C) at every patch,
so the matching-aware loss (real + wrong text -> fake) applies patch by patch.

The logits are (B, P): one per patch of every scale, concatenated; the losses average over
them as over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from stackgan.config_checks import projected_input
from stackgan.models.discriminator import BaseDiscriminator
from stackgan.models.efficientnet import EfficientNetLite0Features
from stackgan.models.layers import LEAKY_SLOPE, crop_squares, random_corners

HEAD_END_SIZE = 4  # each head downsamples its feature map to at most 4x4 patches


def _sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Module:
    # spectral norm on every head weight, as Projected GAN's heads
    return spectral_norm(nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2))


class ScaleHead(nn.Module):
    """One feature scale: 1x1 conv to ``width`` channels, stride-2 4x4 convs down to at most
    4x4, then a realism logit and a text projection per patch."""

    def __init__(self, in_ch: int, size: int, width: int, text_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_sn_conv(in_ch, width, 1), nn.LeakyReLU(LEAKY_SLOPE)]
        while size > HEAD_END_SIZE:
            layers += [_sn_conv(width, width, 4, 2), nn.LeakyReLU(LEAKY_SLOPE)]
            size //= 2
        self.body = nn.Sequential(*layers)
        self.out = _sn_conv(width, 1, 1)
        self.proj = nn.Linear(text_dim, width, bias=False) if text_dim else None
        self.scale = 1 / math.sqrt(width)

    def encode(self, feat: torch.Tensor) -> torch.Tensor:
        code: torch.Tensor = self.body(feat)  # (B, width, s, s), s <= 4
        return code

    def uncond(self, code: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.out(code).flatten(1)  # (B, s*s)
        return logits

    def cond(self, code: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        assert self.proj is not None
        match = (code * self.proj(text)[:, :, None, None]).sum(1).flatten(1)  # (B, s*s)
        logits: torch.Tensor = self.uncond(code) + self.scale * match
        return logits


def random_square_crops(img: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, S, S) -> (B, C, size, size): a square at an independent random place in each
    image (the global generator, as the augmentations). Differentiable in ``img``."""
    return crop_squares(img, random_corners(img.shape[0], img.shape[-1] - size + 1), size)


class FeatureDiscriminator(BaseDiscriminator):
    """Matching-aware patch discriminator on frozen EfficientNet-Lite0 features.

    Args:
        img_size: input resolution.
        text_dim: text embedding size; 0 for an unconditional model.
        ndf: width of every head.
        disc_text_dim: size the text is compressed to before the projections.
        uncond: also return a text-free realism score (the unconditional term of Stage-II and
            StackGAN++); it shares the heads' codes.
        feature_size: the images are resized (bilinear) to this before the frozen network;
            0 = ``img_size``. At 64 px the deepest features are 2x2; 128 gives 4x4.
        backbone: a built feature network to share (e.g. between the branches of a tree);
            None builds one from the package's weights.
        crop: when > 0 and smaller than ``img_size``, D judges a random ``crop``-pixel square
            of each image (a new place for every image and call) instead of the whole: the
            frozen network's cost falls by (crop / img_size)^2, and a 256 px branch is still
            judged at full resolution, a part at a time. The heads are built for the crop.
    """

    def __init__(
        self,
        img_size: int,
        text_dim: int,
        ndf: int = 64,
        disc_text_dim: int = 128,
        uncond: bool = False,
        feature_size: int = 0,
        backbone: EfficientNetLite0Features | None = None,
        crop: int = 0,
    ) -> None:
        super().__init__()
        self.img_size, self.text_dim = img_size, text_dim
        if crop < 0:
            raise ValueError(f"crop must be >= 0, got {crop}")
        self.crop, self.feature_size = projected_input(img_size, crop, feature_size)
        if self.feature_size < 32:
            raise ValueError(
                f"feature_size must be at least 32 (stride 32), got {self.feature_size}"
            )
        self.backbone = backbone if backbone is not None else EfficientNetLite0Features()
        self.text_fc: nn.Module | None = None
        if text_dim:
            self.text_fc = nn.Sequential(
                nn.Linear(text_dim, disc_text_dim), nn.LeakyReLU(LEAKY_SLOPE)
            )
        self.heads = nn.ModuleList(
            ScaleHead(
                ch, max(self.feature_size // stride, 1), ndf, disc_text_dim if text_dim else 0
            )
            for ch, stride in zip(self.backbone.channels, self.backbone.strides)
        )
        self.with_uncond = uncond or not text_dim

    def encode(self, img: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> each head's code (B, ndf, s, s)."""
        if img.shape[-1] != self.img_size or img.shape[-2] != self.img_size:
            raise ValueError(f"expected {self.img_size}px images, got {tuple(img.shape)}")
        if self.crop:
            img = random_square_crops(img, self.crop)
        if self.feature_size != img.shape[-1]:
            img = F.interpolate(img, size=self.feature_size, mode="bilinear", align_corners=False)
        feats = self.backbone(img)
        return [head.encode(f) for head, f in zip(self.heads, feats)]  # type: ignore[operator]

    def cond_logits(self, codes: list[torch.Tensor], text_emb: torch.Tensor) -> torch.Tensor:
        if self.text_fc is None:
            raise ValueError("this discriminator is unconditional: it has no text head")
        t = self.text_fc(text_emb)
        return torch.cat([h.cond(c, t) for h, c in zip(self.heads, codes)], dim=1)  # type: ignore[operator]

    def uncond_logits(self, codes: list[torch.Tensor]) -> torch.Tensor | None:
        if not self.with_uncond:
            return None
        return torch.cat([h.uncond(c) for h, c in zip(self.heads, codes)], dim=1)  # type: ignore[operator]

    def forward(
        self,
        img: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        *,
        texts: Sequence[torch.Tensor] | None = None,
    ) -> Any:
        """As :meth:`stackgan.models.discriminator.Discriminator.forward`, with (B, P) patch
        logits in place of (B,)."""
        codes = self.encode(img)
        if texts is not None:
            return [self.cond_logits(codes, t) for t in texts], self.uncond_logits(codes)
        if text_emb is None:
            return self.uncond_logits(codes)
        return self.cond_logits(codes, text_emb)
