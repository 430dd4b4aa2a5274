"""StackGAN++ generator (Zhang et al., TPAMI 2018, sec. 3.1 and 4; reference ``G_NET``).

One tree instead of two separately trained stages: h_0 = F_0(z, c), h_i = F_i(h_{i-1}, c), and
each h_i feeds an image head G_i, so one forward pass emits images at base, 2x base, 4x base...
(64, 128, 256 in the paper). Every branch after the first joins the tiled conditioning vector
(the noise z in unconditional mode, as the reference code does), runs residual blocks and
upsamples once. GLU gates replace ReLU everywhere. Branches are built in a loop, so the number of
branches (1-4) is a constructor argument, not a ladder of copied classes.
"""

from __future__ import annotations

import torch
from torch import nn

from stackgan.models.conditioning import CondAugment
from stackgan.models.discriminator import Discriminator, log2_ratio
from stackgan.models.layers import (
    BASE_SIZE,
    GLU,
    ConvBlock,
    ResBlock,
    UpBlock,
    conv3x3,
    crop_squares,
    init_weights,
    tile,
)
from stackgan.models.v1 import GeneratorOutput

__all__ = ["Discriminator", "TreeGenerator"]

MAX_BRANCHES = 4  # the reference code builds up to 4 (512 px, "not tested yet" there)


class TreeGenerator(nn.Module):
    """(z, text embedding) -> images at ``base_size * 2**i`` for i < ``num_branches``.

    Widths follow the reference code: the first branch projects (c, z) to 4x4 with
    ``ngf * base_size / 4`` channels (1024 for ngf = 64 at 64 px) and halves them on every
    upsampling to ``ngf`` at ``base_size``; each later branch halves the width again.

    Args:
        text_dim: text embedding size; 0 builds an unconditional generator (no CA; later
            branches join z instead of c).
        z_dim: noise size (100).
        cond_dim: Conditioning Augmentation size (128).
        ngf: width at the first branch's output (64 in the paper).
        num_branches: 1 to 4.
        num_res_blocks: residual blocks in each later branch (2 in the paper).
        base_size: resolution of the first branch (64).
    """

    def __init__(
        self,
        text_dim: int,
        z_dim: int = 100,
        cond_dim: int = 128,
        ngf: int = 64,
        num_branches: int = 3,
        num_res_blocks: int = 2,
        base_size: int = 64,
    ) -> None:
        super().__init__()
        if not 1 <= num_branches <= MAX_BRANCHES:
            raise ValueError(f"num_branches must be 1..{MAX_BRANCHES}, got {num_branches}")
        if ngf % 2 ** (num_branches - 1):
            raise ValueError(f"ngf={ngf} cannot be halved {num_branches - 1} times")
        self.text_dim, self.z_dim, self.cond_dim = text_dim, z_dim, cond_dim
        self.base_size = base_size
        self.img_sizes = [base_size * 2**i for i in range(num_branches)]
        self.ca = CondAugment(text_dim, cond_dim, glu=True) if text_dim else None
        join_dim = cond_dim if text_dim else z_dim  # what later branches tile and concatenate

        # 1. first branch F_0: fc to 4x4, then upsample to base_size
        n_up = log2_ratio(base_size, BASE_SIZE)
        ch = ngf * 2**n_up
        self.base_ch = ch
        self.fc = nn.Sequential(
            nn.Linear((cond_dim if text_dim else 0) + z_dim, ch * BASE_SIZE**2 * 2, bias=False),
            nn.BatchNorm1d(ch * BASE_SIZE**2 * 2),
            GLU(),
        )
        first = []
        for _ in range(n_up):
            first.append(UpBlock(ch, ch // 2, glu=True))
            ch //= 2
        self.branches = nn.ModuleList([nn.Sequential(*first)])
        self.joins = nn.ModuleList([nn.Identity()])  # F_0 has no join; kept for index alignment
        self.heads = nn.ModuleList([nn.Sequential(conv3x3(ch, 3), nn.Tanh())])
        # 2. later branches F_i: join c, residual blocks, upsample x2
        for _ in range(1, num_branches):
            self.joins.append(ConvBlock(ch + join_dim, ch, glu=True))
            self.branches.append(
                nn.Sequential(
                    *[ResBlock(ch, glu=True) for _ in range(num_res_blocks)],
                    UpBlock(ch, ch // 2, glu=True),
                )
            )
            ch //= 2
            self.heads.append(nn.Sequential(conv3x3(ch, 3), nn.Tanh()))
        init_weights(self)

    @property
    def num_stages(self) -> int:
        return len(self.heads)

    @property
    def conditional(self) -> bool:
        return self.ca is not None

    def forward(
        self,
        z: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        ca_noise: torch.Tensor | None = None,
        crop: tuple[int, torch.Tensor] | None = None,
    ) -> GeneratorOutput:
        """z (B, z_dim), text_emb (B, text_dim) or None -> one (B, 3, S, S) image per branch.

        ``crop`` = (size, corners (B, 2) of even (y, x) pixels) draws only that square of the
        last branch's image, for training on crops: the later branches are convolutional with
        the condition tiled, so the last one runs on the matching square of its input, at
        (size / S)^2 of its cost. The output then also has ``coarse_crop``, the last-but-one
        image cut to that region.
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        # 1. conditioning augmentation (or z itself in unconditional mode)
        if self.ca is not None:
            if text_emb is None:
                raise ValueError("this generator is text-conditioned: pass text_emb")
            c, mu, logvar = self.ca(text_emb, ca_noise)  # (B, cond_dim)
            mus, logvars, code = [mu], [logvar], torch.cat([c, z], dim=1)
        else:
            c, mus, logvars, code = z, [], [], z
        # 2. F_0 projects to 4x4 and upsamples to base_size
        h = self.fc(code).view(-1, self.base_ch, BASE_SIZE, BASE_SIZE)  # (B, ngf*base/4, 4, 4)
        images: list[torch.Tensor] = []
        coarse_crop = None
        last = len(self.heads) - 1
        for i, (join, branch, head) in enumerate(zip(self.joins, self.branches, self.heads)):
            if crop is not None and i == last > 0:  # the last branch on a square of its input
                if crop[0] % 2 or bool((crop[1] % 2).any()):
                    raise ValueError("the crop size and corners must be even (output pixels)")
                h = crop_squares(h, crop[1] // 2, crop[0] // 2)
                coarse_crop = crop_squares(images[-1], crop[1] // 2, crop[0] // 2)
            # 3. F_i (i > 0) re-reads the condition at its own resolution
            if i > 0:
                h = join(torch.cat([h, tile(c, h.shape[-1])], dim=1))  # (B, ch, S, S)
            h = branch(h)  # (B, ch', S_i, S_i)
            images.append(head(h))  # (B, 3, S_i, S_i)
        return GeneratorOutput(images, mus, logvars, coarse_crop)
