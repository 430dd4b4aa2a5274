"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al., NeurIPS 2020).

Not in either StackGAN paper. When D wins early (its loss near zero, G's gradients weak), showing
it randomly shifted (and optionally cut-out) real and generated images, in both the D and the G
update, keeps it from memorising the training images without teaching G to draw the
augmentation: G is judged through the same random transform as the real images. The transforms
are differentiable in the image, so G's gradient flows through them.

No colour transforms: on text-conditioned data the colour is what the caption names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stackgan.config import AUGMENT_NAMES, augment_names

__all__ = ["AUGMENTS", "make_augment", "rand_cutout", "rand_translation"]


def rand_translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, independently per sample.

    Uncovered pixels repeat the edge (DiffAugment pads with zeros; the edge suits plain
    backgrounds and keeps the border colour of the image).
    """
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    ys = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(0, h - 1)  # (B, H, 1)
    xs = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(0, w - 1)  # (B, 1, W)
    flat = (ys * w + xs).flatten(1)  # (B, H*W) source pixel of each output pixel
    out = x.flatten(2).gather(2, flat[:, None, :].expand(-1, x.shape[1], -1))
    return out.view_as(x)


def rand_cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of side ``ratio`` x the image size at a random place in each image.

    Beware on captioned data: the square can hide the object the caption names.
    """
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # top-left corner: the square's centre anywhere in the image, clipped at the edges
    y0 = torch.randint(-(ch // 2), h - ch // 2, (b, 1, 1), device=x.device)
    x0 = torch.randint(-(cw // 2), w - cw // 2, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~inside)[:, None].to(x.dtype)


AUGMENTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "translation": rand_translation,
    "cutout": rand_cutout,
}
assert tuple(AUGMENTS) == AUGMENT_NAMES  # the names the config accepts


def make_augment(policy: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``"translation,cutout"`` -> a function applying each in turn; ``""`` -> None."""
    fns = [AUGMENTS[n] for n in augment_names(policy)]  # ConfigError (a ValueError) if unknown
    if not fns:
        return None

    def augment(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x

    return augment
