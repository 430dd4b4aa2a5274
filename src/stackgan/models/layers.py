"""Building blocks shared by every stage: one class per idea, widths as arguments."""

from __future__ import annotations

import torch
from torch import nn

# The numbers every stage shares, named once (STYLE.md: each constant with its source).
LEAKY_SLOPE = 0.2  # DCGAN / StackGAN discriminators and the TF release's CA activation
BASE_SIZE = 4  # every generator starts, and every discriminator ends, at 4x4 (paper, sec. 3.1)
# Channels of the 4x4 code per unit of width: Stage-I G's fc gives ngf * 8 channels and every
# D's image code has ndf * 8 (reference code: gf_dim * 8, df_dim * 8)
CODE_WIDTH = 8
STAGE2_CODE_SIZE = 16  # Stage-II joins image and text at 16x16 (paper, sec. 3.3)


def conv3x3(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution that keeps the spatial size."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias)


class GLU(nn.Module):
    """Gated linear unit over channels: the first half times the sigmoid of the second half.

    StackGAN++ uses it in place of ReLU throughout its generator (Dauphin et al., 2017).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
        a, gate = x.chunk(2, dim=1)
        return a * torch.sigmoid(gate)


class ConvBlock(nn.Sequential):
    """3x3 conv, BatchNorm, then ReLU or GLU (with GLU the conv makes twice the channels, which
    the gate halves again: StackGAN++'s ``Block3x3_relu`` / ``sameBlock``)."""

    def __init__(self, in_ch: int, out_ch: int, glu: bool = False) -> None:
        mid = out_ch * 2 if glu else out_ch
        act: nn.Module = GLU() if glu else nn.ReLU(inplace=True)
        super().__init__(conv3x3(in_ch, mid), nn.BatchNorm2d(mid), act)


class UpBlock(nn.Sequential):
    """Nearest-neighbour x2 upsampling then a :class:`ConvBlock` (StackGAN's ``upBlock``; ReLU in
    v1, GLU in v2)."""

    def __init__(self, in_ch: int, out_ch: int, glu: bool = False) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), *ConvBlock(in_ch, out_ch, glu)
        )


class DownBlock(nn.Sequential):
    """4x4 stride-2 conv, optional BatchNorm, LeakyReLU(0.2): halves the spatial size."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual block: ConvBlock, conv, BN, plus identity.

    v1 (Stage-II): ReLU inside and a ReLU after the sum. v2 (``glu=True``): GLU inside and no
    activation after the sum, as the StackGAN++ reference code has it.
    """

    def __init__(self, ch: int, glu: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(*ConvBlock(ch, ch, glu), conv3x3(ch, ch), nn.BatchNorm2d(ch))
        self.act: nn.Module = nn.Identity() if glu else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(x + self.body(x))
        return out


def crop_squares(x: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, S, S) -> (B, C, size, size): the square at ``corners[i]`` = (y, x) of image i.
    Differentiable in ``x``."""
    if corners.shape != (x.shape[0], 2):
        raise ValueError(f"crop corners must be ({x.shape[0]}, 2), got {tuple(corners.shape)}")
    if int(corners.min()) < 0 or int(corners.max()) + size > min(x.shape[-2:]):
        raise ValueError(f"a {size}px crop at these corners leaves the {x.shape[-1]}px image")
    return torch.stack(
        [x[i, :, y : y + size, xx : xx + size] for i, (y, xx) in enumerate(corners.tolist())]
    )


def random_corners(b: int, room: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """(B, 2) random (y, x) corners in 0..room-1, y drawn for the batch first, then x (from
    ``gen``, or the global generator when None)."""
    ys = torch.randint(0, room, (b,), generator=gen)
    xs = torch.randint(0, room, (b,), generator=gen)
    return torch.stack([ys, xs], dim=1)


def tile(vec: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C) -> (B, C, size, size): a vector repeated over every spatial position."""
    return vec[:, :, None, None].expand(-1, -1, size, size)


class JointHead(nn.Module):
    """Discriminator output head on a 4x4 image code.

    Conditional (``text_dim > 0``): the compressed text is tiled 4x4, concatenated with the image
    code, mixed by a conv + BN + LeakyReLU (1x1 in v1's TensorFlow release, 3x3 in StackGAN++'s
    ``jointConv``: ``joint_kernel``), and a 4x4 conv gives one logit. Unconditional
    (``text_dim == 0``): the 4x4 conv reads the image code alone.

    ``projection`` (conditional only; not in the StackGAN papers) adds the projection
    discriminator's term (Miyato & Koyama, 2018): ``<V t, sum_xy code(x, y)>``, a direct product
    of text and image features beside the concat-and-conv join. Zero at initialisation (unless
    spectrally normalised, see :class:`Discriminator`). On
    ``shapes`` it was measured not to fix small-object colour (README, "The Stage-I plateau").
    """

    def __init__(
        self, img_ch: int, text_dim: int = 0, joint_kernel: int = 1, projection: bool = False
    ) -> None:
        super().__init__()
        self.text_dim = text_dim
        if projection and not text_dim:
            raise ValueError("a projection term needs a conditional head (text_dim > 0)")
        self.proj = nn.Linear(text_dim, img_ch, bias=False) if projection else None
        if text_dim:
            self.joint: nn.Module = nn.Sequential(
                nn.Conv2d(
                    img_ch + text_dim, img_ch, joint_kernel, padding=joint_kernel // 2, bias=False
                ),
                nn.BatchNorm2d(img_ch),
                nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            )
        else:
            self.joint = nn.Identity()
        self.out = nn.Conv2d(img_ch, 1, kernel_size=4, stride=4)

    def forward(self, code: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """code: (B, C, 4, 4); text: (B, text_dim) or None -> logits (B,)."""
        if self.text_dim:
            if text is None:
                raise ValueError("conditional head needs the text code")
            joined = torch.cat([code, tile(text, code.shape[-1])], dim=1)  # (B, C + T, 4, 4)
            logits: torch.Tensor = self.out(self.joint(joined)).flatten()  # (B,)
            if self.proj is not None:
                logits = logits + (code.sum(dim=(2, 3)) * self.proj(text)).sum(dim=1)
            return logits
        logits = self.out(self.joint(code)).flatten()
        return logits


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation, dispatched on type: N(0, 0.02) convs/linears, N(1, 0.02) BN.
    Modules on the meta device (shape checks, no storage) are left as they are: nothing to
    initialise, and torch's meta random kernels take a second to load on first use."""
    for m in module.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
