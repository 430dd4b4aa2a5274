"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al., NeurIPS 2020).

Not in either StackGAN paper. When D wins early (its loss near zero, G's gradients weak), showing
it randomly shifted (and optionally cut-out) real and generated images, in both the D and the G
update, keeps it from memorising the training images without teaching G to draw the
augmentation: G is judged through the same random transform as the real images. The transforms
are differentiable in the image, so G's gradient flows through them.

No colour transforms: on text-conditioned data the colour is what the caption names.

:class:`AdaptiveAugment` is ADA's control (Karras et al., NeurIPS 2020): each transform is applied
to each image with a probability p that follows an overfitting signal, r_t = E[sign D(real)],
raised while D is too sure of the real images (r_t above the target) and lowered otherwise, so
that a long run on a small dataset is augmented only as much as it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stackgan.config import AUGMENT_NAMES, augment_names

__all__ = [
    "AUGMENTS",
    "AdaptiveAugment",
    "make_augment",
    "rand_cutout",
    "rand_scale",
    "rand_translation",
]

SCALE_STD = 0.2  # ADA's isotropic scaling: s = 2^N(0, 0.2) (StyleGAN2-ADA augment.py, scale_std)


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


def rand_scale(x: torch.Tensor, std: float = SCALE_STD) -> torch.Tensor:
    """Zoom each image about its centre by s = 2^N(0, std) (ADA's isotropic scaling); the
    border is reflected where the image shrinks. Differentiable (bilinear resampling)."""
    b = x.shape[0]
    s = torch.exp2(torch.randn(b, device=x.device) * std)  # (B,)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / s  # output pixel -> source pixel: 1/s zooms in by s
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out.to(x.dtype)


AUGMENTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "translation": rand_translation,
    "cutout": rand_cutout,
    "scale": rand_scale,
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


class AdaptiveAugment:
    """ADA: each of ``policy``'s transforms applied to each image with probability ``p``.

    Call :meth:`observe` with D's logits for real images every iteration; every ``interval``
    calls, p moves by ``sign(r_t - target) * images / (kimg * 1000)`` where r_t is the mean sign
    of those logits, so it can go from 0 to 1 in ``kimg`` thousand images (ADA: 500; a CPU
    run sees a few tens of thousands of images in an hour).

    Args:
        policy: ``loss.augment``, e.g. ``"translation,cutout,scale"``.
        target: the r_t to hold (ADA: 0.6).
        interval: iterations between adjustments (ADA: 4).
        kimg: thousands of images for p to go from 0 to 1.
        p: the starting probability (a resumed run's).
    """

    def __init__(
        self, policy: str, target: float, interval: int = 4, kimg: float = 20.0, p: float = 0.0
    ) -> None:
        self.fns = [AUGMENTS[n] for n in augment_names(policy)]
        self.target, self.interval, self.kimg, self.p = target, interval, kimg, p
        self.r_t = math.nan  # the last adjustment's mean sign of D's real logits
        # under torchrun: the mean of r_t over the ranks, so that every rank holds the same p
        self.reduce: Callable[[float], float] = lambda r: r
        self._signs: torch.Tensor | None = None
        self._images = 0
        self._calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        for fn in self.fns:
            # per image: transformed with probability p (the batch is transformed whole, then
            # the unselected images are taken back: the transforms are cheap next to D)
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.p
            x = torch.where(keep, x, fn(x))
        return x

    def observe(self, real_sign: torch.Tensor, images: int) -> None:
        """Accumulate one iteration's mean sign(D(real)) over ``images`` images (kept on the
        device: the host reads it once per ``interval``)."""
        signs = real_sign.detach().float() * images
        self._signs = signs if self._signs is None else self._signs + signs
        self._images += images
        self._calls += 1
        if self._calls % self.interval == 0:
            self._adjust()

    def _adjust(self) -> None:
        assert self._signs is not None
        self.r_t = self.reduce(float(self._signs) / max(self._images, 1))
        step = math.copysign(1.0, self.r_t - self.target) * self._images
        self.p = min(max(self.p + step / (self.kimg * 1000), 0.0), 1.0)
        self._signs, self._images = None, 0
