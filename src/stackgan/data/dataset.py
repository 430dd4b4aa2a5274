"""``TextImageDataset``: the images and captions of one split, whatever the folder's layout.

It reads every layout of :mod:`stackgan.data.layouts` (CUB-200-2011 ``birds`` as the original
StackGAN code has it, ``shapes`` written the same way, Oxford-102, COCO 2014, a plain folder)
and the packs of :mod:`stackgan.data.packed`. The CUB layout, for example (``shapes`` without
bounding boxes)::

    CUB_200_2011/images/<class>/<name>.jpg   CUB_200_2011/images.txt   [bounding_boxes.txt]
    text/<class>/<name>.txt                  one caption per line (10 per image for CUB)
    train/filenames.pickle, train/class_info.pickle, test/...   (Python 2 pickles)

Images are bounding-box cropped as the reference code does (a square of half-side
0.75 * max(w, h) around the box centre, clipped to the image), resized to the load size
(76/64 of the training size when random cropping) and cached on disk once as uint8, so training
reads a memory map instead of decoding JPEGs every epoch. Random crop and flip happen per batch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from stackgan.data.io import (
    Batch,
    DatasetError,
    augment_pyramid,
    cached_images,
    default_cache_dir,
    load_size,
)
from stackgan.data.layouts import read_index
from stackgan.data.negatives import hard_wrong_captions, other_images
from stackgan.data.packed import is_pack, read_pack

CACHE_VERSION = 1


class TextImageDataset:
    """Images and captions of one split of a dataset folder, held in memory as uint8.

    Reads every layout of :mod:`stackgan.data.layouts` (CUB birds and shapes, Oxford-102
    flowers, COCO 2014, a generic folder of images with captions beside them).

    Args:
        root: dataset folder.
        split: "train" or "test".
        img_size: largest training resolution (e.g. 64 for Stage-I, 256 for Stage-II).
        bbox_crop: crop around ``bounding_boxes.txt`` when the file exists.
        random_crop: keep a 76/64 margin for random crops.
        random_flip: flip horizontally at random in :meth:`sample`.
        max_images: keep only the first N images (0 = all).
        cache_dir: where the uint8 image cache goes; None = ``<root>/.stackgan-cache`` when
            writable, else ``~/.cache/stackgan``.
        progress: show a progress bar while building the cache.
        layout: "auto" (detected from the folder), "cub", "flowers", "coco" or "folder".
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        img_size: int = 64,
        *,
        bbox_crop: bool = True,
        random_crop: bool = True,
        random_flip: bool = True,
        max_images: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        layout: str = "auto",
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.img_size = img_size
        self.random_crop = random_crop
        self.random_flip = random_flip
        self.load_size = load_size(img_size, random_crop)

        packed = None
        if is_pack(self.root):  # one file from `stackgan data pack`: no folder, no decoding
            packed = read_pack(self.root, split, self.load_size, max_images, progress)
            if packed.bbox_crop and not bbox_crop:
                raise DatasetError(
                    f"{self.root} was packed with bounding-box crops; data.bbox_crop is false "
                    "(repack with --no-bbox-crop)"
                )
            keys, all_caps, classes = packed.keys, packed.captions, packed.class_ids
            self.image_paths = [self.root / k for k in keys]  # (inside the pack)
            self.bboxes: dict[str, tuple[float, float, float, float]] = {}
        else:
            index = read_index(self.root, split, layout, max_images)
            keys, all_caps, classes = index.keys, index.captions, index.class_ids
            self.image_paths = index.image_paths
            self.bboxes = index.bboxes if bbox_crop else {}
        self.keys: list[str] = keys
        self.class_ids = torch.tensor(classes if classes is not None else range(len(self.keys)))
        self.has_classes = classes is not None

        # Captions: a flat list with per-image offsets, so any number per image works.
        self.captions: list[str] = []
        offsets, counts = [], []
        for caps in all_caps:
            offsets.append(len(self.captions))
            counts.append(len(caps))
            self.captions.extend(caps)
        self.caption_offsets = torch.tensor(offsets)
        self.caption_counts = torch.tensor(counts)

        self.bbox_crop = packed.bbox_crop if packed is not None else bool(self.bboxes)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.root)
        images = packed.images if packed is not None else self._load_images(progress)
        self.images = torch.from_numpy(images)  # (N, L, L, 3) uint8

    # ------------------------------------------------------------------------------------------
    def _cache_path(self) -> Path:
        sig = hashlib.sha1(
            repr(
                (
                    CACHE_VERSION,
                    str(self.root.resolve()),
                    self.split,
                    self.keys,
                    self.load_size,
                    self.bbox_crop,
                )
            ).encode()
        ).hexdigest()[:12]
        return self.cache_dir / f"images-{self.split}-{self.load_size}px-{sig}.npy"

    def _load_images(self, progress: bool) -> np.ndarray:
        return cached_images(
            self._cache_path(),
            self.keys,
            self.image_paths,
            self.load_size,
            self.bboxes,
            progress,
            f"caching {self.split} images at {self.load_size}px",
        )

    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def image_captions(self) -> list[list[str]]:
        """Every image's captions, in image order."""
        return [
            self.captions[start : start + count]
            for start, count in zip(self.caption_offsets.tolist(), self.caption_counts.tolist())
        ]

    def random_captions(
        self, idx: torch.Tensor, gen: torch.Generator | None = None
    ) -> torch.Tensor:
        """One caption index per image, uniformly among that image's captions."""
        r = torch.rand(len(idx), generator=gen)
        return self.caption_offsets[idx] + (r * self.caption_counts[idx]).long()

    def mismatched(self, idx: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Image indices whose captions do not describe ``idx`` (see
        :func:`stackgan.data.negatives.other_images`)."""
        return other_images(self.class_ids, idx, gen)

    def hard_wrong_captions(
        self,
        idx: torch.Tensor,
        caption_idx: torch.Tensor,
        emb: torch.Tensor,
        candidates: int,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """See :func:`stackgan.data.negatives.hard_wrong_captions`."""
        return hard_wrong_captions(self, idx, caption_idx, emb, candidates, gen)

    def images_at(
        self,
        idx: torch.Tensor,
        sizes: list[int],
        gen: torch.Generator | None = None,
        augment: bool = True,
    ) -> list[torch.Tensor]:
        """Crop/flip the cached images and return them at each of ``sizes`` in [-1, 1]."""
        return augment_pyramid(
            self.images[idx],
            self.img_size,
            sizes,
            gen,
            random_crop=augment and self.random_crop,
            random_flip=augment and self.random_flip,
        )

    def sample(
        self, idx: torch.Tensor, sizes: list[int], gen: torch.Generator | None = None
    ) -> Batch:
        return Batch(
            images=self.images_at(idx, sizes, gen),
            caption_idx=self.random_captions(idx, gen),
            wrong_caption_idx=self.random_captions(self.mismatched(idx, gen), gen),
        )
