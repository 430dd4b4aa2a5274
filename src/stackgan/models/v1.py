"""StackGAN v1 networks (Zhang et al., ICCV 2017, sec. 3.2-3.3 and 4).

Stage-I sketches a low-resolution image from (z, c); Stage-II re-reads the (frozen) Stage-I
image together with a fresh conditioning vector and paints a high-resolution one. Widths follow
the paper with ``ngf``/``ndf`` as arguments; a single :class:`Discriminator` serves any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.models.conditioning import CondAugment
from stackgan.models.discriminator import Discriminator, log2_ratio
from stackgan.models.layers import (
    BASE_SIZE,
    CODE_WIDTH,
    STAGE2_CODE_SIZE,
    ResBlock,
    UpBlock,
    conv3x3,
    init_weights,
    tile,
)

__all__ = ["Discriminator", "GeneratorOutput", "Stage1Generator", "Stage2Generator"]
SKIP_CLAMP = 0.999  # skip mode: the Stage-I image is clamped inside (-1, 1) before atanh


@dataclass
class GeneratorOutput:
    """images: one (B, 3, S, S) tensor in [-1, 1] per stage, lowest resolution first.
    mu, logvar: (B, cond_dim) of each Conditioning Augmentation, for the KL term.
    coarse_crop: see below; None when the images are whole."""

    images: list[torch.Tensor]
    mus: list[torch.Tensor]
    logvars: list[torch.Tensor]
    # StackGAN++ trained on crops (train.crop): the last image is a crop, and this is the
    # last-but-one image cut to the same region, for the terms that compare consecutive scales
    coarse_crop: torch.Tensor | None = None


class Stage1Generator(nn.Module):
    """(z, text embedding) -> 64x64 image.

    fc -> (ngf*8, 4, 4) + BN + ReLU, then log2(img_size/4) upsample blocks halving channels,
    then 3x3 conv + tanh.

    Args:
        text_dim: text embedding size.
        z_dim: noise size (100 in the paper).
        cond_dim: Conditioning Augmentation size (128).
        ngf: base width (128 in the paper: the fc output is 4x4x1024).
        img_size: output resolution (64).
        ca_relu: a plain ReLU after the CA fc (the PyTorch release) instead of a leaky one.
    """

    def __init__(
        self,
        text_dim: int,
        z_dim: int = 100,
        cond_dim: int = 128,
        ngf: int = 128,
        img_size: int = 64,
        ca_relu: bool = False,
    ) -> None:
        super().__init__()
        self.text_dim, self.z_dim, self.cond_dim, self.img_size = (
            text_dim,
            z_dim,
            cond_dim,
            img_size,
        )
        self.ca = CondAugment(text_dim, cond_dim, relu=ca_relu)
        ch = ngf * CODE_WIDTH
        self.fc = nn.Sequential(
            nn.Linear(z_dim + cond_dim, ch * BASE_SIZE * BASE_SIZE, bias=False),
            nn.BatchNorm1d(ch * BASE_SIZE * BASE_SIZE),
            nn.ReLU(inplace=True),
        )
        self.base_ch = ch
        blocks = []
        for _ in range(log2_ratio(img_size, BASE_SIZE)):
            blocks.append(UpBlock(ch, ch // 2))
            ch //= 2
        self.up = nn.Sequential(*blocks)
        self.to_rgb = nn.Sequential(conv3x3(ch, 3), nn.Tanh())
        init_weights(self)

    @property
    def num_stages(self) -> int:
        return 1

    def forward(
        self, z: torch.Tensor, text_emb: torch.Tensor, ca_noise: torch.Tensor | None = None
    ) -> GeneratorOutput:
        """z (B, z_dim), text_emb (B, text_dim) -> one (B, 3, img_size, img_size) image."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        # 1. conditioning augmentation
        c, mu, logvar = self.ca(text_emb, ca_noise)  # (B, cond_dim)
        # 2. project (z, c) to a 4x4 feature map
        h = self.fc(torch.cat([c, z], dim=1))
        h = h.view(-1, self.base_ch, BASE_SIZE, BASE_SIZE)  # (B, ngf*8, 4, 4)
        # 3. upsample to the image
        img = self.to_rgb(self.up(h))  # (B, 3, img_size, img_size)
        return GeneratorOutput([img], [mu], [logvar])


class Stage2Generator(nn.Module):
    """(frozen Stage-I image, text embedding) -> high-resolution image.

    The Stage-I generator is held by composition and never trained here; it is kept in eval mode
    so its BatchNorm uses the running statistics it was trained with.

    Args:
        stage1: a trained :class:`Stage1Generator`.
        cond_dim: size of Stage-II's own Conditioning Augmentation.
        ngf: base width (128 in the paper): the 16x16 code has ngf*4 channels.
        num_res_blocks: residual blocks after the text join (4 in the paper).
        img_size: output resolution (256).
        skip: not in the paper. The output is tanh(atanh(up(I_0)) + r): the network paints a
            correction r (zero at initialisation) to the bilinearly upsampled Stage-I image I_0
            rather than a whole new image, so it starts from Stage-I's layout and colours.
        ca_relu: a plain ReLU after its CA fc (the PyTorch release) instead of a leaky one.
    """

    def __init__(
        self,
        stage1: Stage1Generator,
        cond_dim: int = 128,
        ngf: int = 128,
        num_res_blocks: int = 4,
        img_size: int = 256,
        skip: bool = False,
        ca_relu: bool = False,
    ) -> None:
        super().__init__()
        self.stage1 = stage1
        self.stage1.requires_grad_(False)
        self.text_dim, self.z_dim, self.img_size = stage1.text_dim, stage1.z_dim, img_size
        self.cond_dim = cond_dim
        self.ca = CondAugment(stage1.text_dim, cond_dim, relu=ca_relu)
        # 1. encoder: 3x3 conv, then 4x4 stride-2 convs down to 16x16 (two for a 64 input)
        n_down = log2_ratio(stage1.img_size, STAGE2_CODE_SIZE)
        enc: list[nn.Module] = [conv3x3(3, ngf), nn.ReLU(inplace=True)]
        ch = ngf
        for _ in range(n_down):
            enc += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.ReLU(inplace=True),
            ]
            ch *= 2
        self.encoder = nn.Sequential(*enc)
        # 2. join with the tiled conditioning vector, then residual blocks
        self.joint = nn.Sequential(conv3x3(ch + cond_dim, ch), nn.BatchNorm2d(ch), nn.ReLU(True))
        self.res = nn.Sequential(*[ResBlock(ch) for _ in range(num_res_blocks)])
        # 3. upsample 16 -> img_size
        ups = []
        for _ in range(log2_ratio(img_size, STAGE2_CODE_SIZE)):
            ups.append(UpBlock(ch, ch // 2))
            ch //= 2
        self.up = nn.Sequential(*ups)
        self.skip = skip
        # same parameter names either way (Tanh has none), so exports load by config alone
        rgb = conv3x3(ch, 3)
        self.to_rgb = nn.Sequential(rgb) if skip else nn.Sequential(rgb, nn.Tanh())
        init_weights(self.encoder)
        init_weights(self.joint)
        init_weights(self.res)
        init_weights(self.up)
        init_weights(self.to_rgb)
        init_weights(self.ca)
        if skip:
            nn.init.zeros_(rgb.weight)  # starts as the upsampled Stage-I image

    @property
    def num_stages(self) -> int:
        return 2

    def train(self, mode: bool = True) -> Stage2Generator:
        super().train(mode)
        self.stage1.eval()  # frozen: always use its running BatchNorm statistics
        return self

    def forward(
        self,
        z: torch.Tensor,
        text_emb: torch.Tensor,
        ca_noise: torch.Tensor | None = None,
        lo_img: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """z (B, z_dim), text_emb (B, text_dim) -> [Stage-I (B,3,64,64), Stage-II (B,3,256,256)].

        ``lo_img`` (B, 3, s, s): refine this image instead of Stage-I's (``z`` is then unused).
        The network is fully convolutional with the text tiled over its 16x16 code, so any s
        divisible by 4 works and gives s * img_size / 64 pixels: training feeds it real photos
        taken down to Stage-I's size (super-resolution on real pairs) and crops of either
        (:mod:`stackgan.train.superres`).
        """
        if lo_img is None:
            with torch.no_grad():
                lo_img = self.stage1(z, text_emb, ca_noise).images[-1]  # (B, 3, 64, 64)
        lo_img = lo_img.detach()
        c, mu, logvar = self.ca(text_emb, ca_noise)  # (B, cond_dim)
        h = self.encoder(lo_img)  # (B, ngf*4, 16, 16)
        h = self.joint(torch.cat([h, tile(c, h.shape[-1])], dim=1))  # (B, ngf*4, 16, 16)
        h = self.res(h)
        img = self.to_rgb(self.up(h))  # (B, 3, img_size, img_size) for a 64 px lo_img
        if self.skip:  # img is the correction r, added to I_0 before the tanh
            # in fp32: in bf16, 0.999 rounds to 1 and atanh(1) is inf
            base = F.interpolate(
                lo_img.float(), size=img.shape[-2:], mode="bilinear", align_corners=False
            )
            r = img.float()
            img = torch.tanh(torch.atanh(base.clamp(-SKIP_CLAMP, SKIP_CLAMP)) + r).to(img.dtype)
        return GeneratorOutput([lo_img, img], [mu], [logvar])
