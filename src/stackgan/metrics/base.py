"""What the Inception-based metrics share: the error type and the input transform of the
FID / IS networks (used by ``features`` and ``fid_inception`` alike)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stackgan.errors import StackGANError

INCEPTION_SIZE = 299  # input resolution of Inception-v3 (bilinear resize, as TF FID)


TF_INPUT_RANGE = (-1.0, 0.9921875)  # (x - 128) / 128 for x in 0..255: the TF graph's input


FEATURE_DIM = 2048  # pool3


class MetricError(StackGANError, RuntimeError):
    """A metric that cannot be computed: missing network, too few images, bad input."""


def inception_input(images: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """(B, 3, H, W) floats in [-1, 1], or (B, H, W, 3) uint8 -> (B, 3, 299, 299) in [0, 1] on
    ``device``, bilinearly resized as the standard FID and IS code do. Each network then maps
    [0, 1] to the input range it was trained with."""
    if images.dtype == torch.uint8:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
    else:
        x = (images.float() + 1.0) / 2.0
    x = x.clamp(0, 1).to(device)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(
            x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
    return x


class MetricUnavailableError(MetricError):
    """A metric that does not apply to this model or dataset (no judge, no text, no matcher);
    ``stackgan eval``'s default list skips it, a metric asked for by name fails with it."""
