"""The discriminator of both StackGAN versions: one class for every image size.

StackGAN v1 (sec. 3.2-3.3) and StackGAN++ (sec. 3.2, the reference ``D_NET64..D_NET256``) use the
same design: stride-2 4x4 convs down to 4x4, 3x3 convs back to ndf*8 channels where the image was
large, then a conditional head on (image code, tiled text) and, for Stage-II and StackGAN++, an
unconditional head on the image code alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stackgan.models.layers import (
    BASE_SIZE,
    CODE_WIDTH,
    LEAKY_SLOPE,
    DownBlock,
    JointHead,
    conv3x3,
    init_weights,
)


def log2_ratio(big: int, small: int) -> int:
    """n with big == small * 2**n; a clear error otherwise."""
    n = int(math.log2(big // small)) if big >= small else -1
    if n < 0 or small * 2**n != big:
        raise ValueError(f"{big} is not {small} times a power of two")
    return n


class BaseDiscriminator(nn.Module):
    """What the training steps need of a discriminator: ``forward(img, texts=[t, ...])`` ->
    (a list of conditional logits per text, realism logits or None), logits (B,) or (B, P)
    for P patches, and whether it reads text."""

    img_size: int
    text_dim: int

    @property
    def conditional(self) -> bool:
        return self.text_dim > 0


class Discriminator(BaseDiscriminator):
    """Matching-aware discriminator for any power-of-two ``img_size`` >= 8 (v1 and v2).

    log2(img_size / 4) stride-2 4x4 convs (no BN on the first) take the image to 4x4 with
    ndf * 2^k channels; where that exceeds ndf*8 (Stage-II, StackGAN++ at 128/256), 3x3 convs
    bring it back down, as in both papers. The text embedding is compressed by its own fc to
    ``disc_text_dim``; a conditional :class:`JointHead` scores (image, text) and an optional
    unconditional one scores the image alone.

    Args:
        img_size: input resolution.
        text_dim: text embedding size; 0 for an unconditional model (only the realism head).
        ndf: base width (64 in both papers).
        disc_text_dim: size the text is compressed to (N_d = 128).
        uncond: add the unconditional head next to the conditional one.
        joint_kernel: kernel of the conv joining image and text (1 in v1, 3 in v2).
        spectral_norm: spectrally normalise every conv and linear weight (Miyato et al., 2018).
            Not in either paper: an option for short runs where D overpowers G.
        projection: add a projection term to the conditional head (see :class:`JointHead`).
    """

    def __init__(
        self,
        img_size: int,
        text_dim: int,
        ndf: int = 64,
        disc_text_dim: int = 128,
        uncond: bool = False,
        joint_kernel: int = 1,
        spectral_norm: bool = False,
        projection: bool = False,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.text_dim = text_dim
        n_down = log2_ratio(img_size, BASE_SIZE)
        layers: list[nn.Module] = [DownBlock(3, ndf, batch_norm=False)]
        ch = ndf
        for _ in range(n_down - 1):
            layers.append(DownBlock(ch, ch * 2))
            ch *= 2
        while ch > ndf * CODE_WIDTH:
            layers += [
                conv3x3(ch, ch // 2),
                nn.BatchNorm2d(ch // 2),
                nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            ]
            ch //= 2
        self.encode_image = nn.Sequential(*layers)
        self.code_ch = ch
        self.text_fc: nn.Module | None = None
        self.cond_head: JointHead | None = None
        if text_dim:
            self.text_fc = nn.Sequential(
                nn.Linear(text_dim, disc_text_dim), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
            )
            self.cond_head = JointHead(ch, disc_text_dim, joint_kernel, projection)
        self.uncond_head = JointHead(ch, 0) if uncond or not text_dim else None
        init_weights(self)
        if self.cond_head is not None and self.cond_head.proj is not None and not spectral_norm:
            # starts as the papers' concat head; under spectral norm a zero weight has sigma 0
            # (W / sigma is NaN), so there it keeps the DCGAN init, scaled to sigma 1
            nn.init.zeros_(self.cond_head.proj.weight)
        if spectral_norm:  # after init: the parametrisation keeps the initialised weight
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(m)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> image code (B, ndf*8, 4, 4)."""
        if img.shape[-1] != self.img_size or img.shape[-2] != self.img_size:
            raise ValueError(f"expected {self.img_size}px images, got {tuple(img.shape)}")
        code: torch.Tensor = self.encode_image(img)
        return code

    def cond_logits(self, code: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """(image code, text embedding (B, text_dim)) -> matching logits (B,)."""
        if self.cond_head is None or self.text_fc is None:
            raise ValueError("this discriminator is unconditional: it has no text head")
        logits: torch.Tensor = self.cond_head(code, self.text_fc(text_emb))
        return logits

    def uncond_logits(self, code: torch.Tensor) -> torch.Tensor | None:
        """Image code -> realism logits (B,), or None without an unconditional head."""
        return None if self.uncond_head is None else self.uncond_head(code)

    def forward(
        self,
        img: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        *,
        texts: Sequence[torch.Tensor] | None = None,
    ) -> Any:
        """Score images. The training steps call this (DistributedDataParallel synchronises only
        what goes through ``forward``).

        - ``texts``: the image is encoded once and scored against each text: returns
          (list of conditional logits (B,), one per text; realism logits (B,) or None).
        - else: the conditional logits for ``text_emb``, or the realism logits of an
          unconditional discriminator.
        """
        code = self.encode(img)
        if texts is not None:
            return [self.cond_logits(code, t) for t in texts], self.uncond_logits(code)
        if text_emb is None:
            logits = self.uncond_logits(code)
            if logits is None:
                raise ValueError("a conditional discriminator needs the text embedding")
            return logits
        return self.cond_logits(code, text_emb)
