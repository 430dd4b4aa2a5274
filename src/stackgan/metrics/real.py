"""Inception features of a dataset's real images, computed once and cached beside the dataset.

The cache key names the detector (its file digest), the dataset folder, the split, the
resolution the images are read at and the image list, so FID reference statistics are never
reused across any of those.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from stackgan.data.dataset import TextImageDataset
from stackgan.metrics.features import extract_features
from stackgan.utils.cache import cached_array

FEATURE_BATCH = 50
CACHE_VERSION = 1


def image_batches(
    ds: TextImageDataset,
    size: int,
    batch: int = FEATURE_BATCH,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """The dataset's images at ``size`` (no augmentation), (B, 3, S, S) in [-1, 1]."""
    for s in range(0, len(ds), batch):
        x = ds.images_at(torch.arange(s, min(s + batch, len(ds))), [size], augment=False)[0]
        yield transform(x) if transform is not None else x


def dataset_features(
    root: str | Path,
    split: str,
    size: int,
    extractor: torch.nn.Module,
    *,
    max_images: int = 0,
    layout: str = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, TextImageDataset]:
    """(N, 2048) features of the real images of ``split`` read at ``size`` px (bounding-box crop
    where the dataset has boxes, no random crop or flip), and the dataset they came from."""
    ds = TextImageDataset(
        root,
        split,
        size,
        random_crop=False,
        random_flip=False,
        max_images=max_images,
        progress=progress,
        layout=layout,
    )
    name = str(getattr(extractor, "name", type(extractor).__name__))  # names the detector
    sig = hashlib.sha1(
        repr((CACHE_VERSION, name, str(ds.root.resolve()), split, size, ds.keys)).encode()
    ).hexdigest()[:12]
    path = ds.cache_dir / f"features-{name}-{split}-{size}px-{sig}.npy"
    feats = cached_array(
        path,
        lambda shape: shape[0] == len(ds),
        lambda: extract_features(
            extractor, image_batches(ds, size), len(ds), progress, f"inception {split} {size}px"
        ),
    )
    return feats, ds
