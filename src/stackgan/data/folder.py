"""A plain folder of images, for StackGAN++'s unconditional mode (the paper's LSUN / ImageNet
setting): every ``.jpg``/``.jpeg``/``.png`` under the folder, recursively, in sorted order.

Images are resized (shorter side) and centre-cropped to a square once, and cached as uint8
like the CUB loader does; batches are served at every resolution of the generator's tree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from stackgan.data.io import (
    IMAGE_EXTS,
    Batch,
    DatasetError,
    augment_pyramid,
    cached_images,
    default_cache_dir,
)

CACHE_VERSION = 1


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted), skipping hidden folders such as caches."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class ImageFolderDataset:
    """All images under ``root``, without text.

    Args:
        root: the folder.
        img_size: largest training resolution.
        random_flip: flip horizontally at random in :meth:`sample`.
        max_images: keep only the first N images (0 = all).
        cache_dir: where the uint8 cache goes (None: ``<root>/.stackgan-cache`` when writable).
        progress: progress bar while building the cache.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 64,
        *,
        random_flip: bool = True,
        max_images: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        paths: list[Path] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"image folder not found: {self.root}")
        # ``paths``: these images of the folder only (a split of a dataset layout), else all
        paths = list_images(self.root) if paths is None else list(paths)
        if max_images:
            paths = paths[:max_images]
        if not paths:
            raise DatasetError(f"no .jpg/.jpeg/.png images under {self.root}")
        self.img_size = img_size
        self.random_flip = random_flip
        self.keys = [str(p.relative_to(self.root)) for p in paths]
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.root)
        sig = hashlib.sha1(
            repr((CACHE_VERSION, str(self.root.resolve()), self.keys, img_size)).encode()
        ).hexdigest()[:12]
        self.images = torch.from_numpy(
            cached_images(
                self.cache_dir / f"folder-{img_size}px-{sig}.npy",
                self.keys,
                paths,
                img_size,
                progress=progress,
                desc=f"caching images at {img_size}px",
            )
        )  # (N, S, S, 3) uint8

    def __len__(self) -> int:
        return len(self.keys)

    def images_at(
        self,
        idx: torch.Tensor,
        sizes: list[int],
        gen: torch.Generator | None = None,
        augment: bool = True,
    ) -> list[torch.Tensor]:
        """The images ``idx`` at each of ``sizes`` in [-1, 1], flipped at random when training."""
        return augment_pyramid(
            self.images[idx], self.img_size, sizes, gen, random_flip=augment and self.random_flip
        )

    def sample(
        self, idx: torch.Tensor, sizes: list[int], gen: torch.Generator | None = None
    ) -> Batch:
        return Batch(images=self.images_at(idx, sizes, gen))
