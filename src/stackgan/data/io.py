"""What every dataset layout shares: the error type, reading split pickles (restricted),
captions (strict UTF-8) and images (bounding-box crop, resize), the uint8 image cache and the
multi-resolution batch pyramid. ``cub``, ``layouts`` and ``folder`` all build on this module."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stackgan.errors import StackGANError
from stackgan.utils.cache import cached_array
from stackgan.utils.images import ImageFileError, open_image
from stackgan.utils.safe_pickle import safe_load
from stackgan.utils.textio import TextFileError, read_text_file

LOAD_RATIO = 76 / 64  # reference code: load at 76 for 64, 304 for 256, then random crop


def load_size(img_size: int, random_crop: bool) -> int:
    """The size images are read at for ``img_size`` px: LOAD_RATIO larger under random crops."""
    return round(img_size * LOAD_RATIO) if random_crop else img_size


BBOX_SCALE = 0.75  # reference code: crop half-side = 0.75 * max(bbox w, bbox h)


IMAGE_EXTS = (".jpg", ".jpeg", ".png")


class DatasetError(StackGANError, ValueError):
    """A dataset folder that cannot be read, with the path of the problem."""


def read_pickle(path: Path) -> object:
    try:
        return safe_load(path)  # the originals are Python 2 pickles; nothing in them may run
    except FileNotFoundError:
        raise DatasetError(f"missing split file: {path}") from None
    except (pickle.UnpicklingError, OSError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def bbox_crop_box(
    bbox: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """The reference code's crop window (x1, y1, x2, y2) around a CUB bounding box."""
    x, y, w, h = bbox
    r = int(max(w, h) * BBOX_SCALE)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def load_image(
    path: Path, load_size: int, bbox: tuple[float, float, float, float] | None
) -> np.ndarray:
    """Open, bbox-crop, resize the shorter side to ``load_size`` and centre-crop to a square."""
    try:
        img = open_image(path)  # JPEG and PNG only: no other PIL plugin ever runs
    except FileNotFoundError:
        raise DatasetError(f"missing image: {path}") from None
    except (ImageFileError, OSError) as exc:
        raise DatasetError(str(exc)) from None
    if bbox is not None:
        img = img.crop(bbox_crop_box(bbox, *img.size))
    w, h = img.size
    scale = load_size / min(w, h)
    nw, nh = max(load_size, round(w * scale)), max(load_size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.BOX)
    left, top = (nw - load_size) // 2, (nh - load_size) // 2
    img = img.crop((left, top, left + load_size, top + load_size))
    return np.asarray(img, dtype=np.uint8)


def read_captions(path: Path) -> list[str]:
    try:
        lines = read_text_file(path).splitlines()
    except FileNotFoundError:
        raise DatasetError(f"missing caption file: {path}") from None
    except TextFileError as exc:
        raise DatasetError(f"unreadable caption file: {exc}") from None
    caps = [ln.strip() for ln in lines if ln.strip()]
    if not caps:
        raise DatasetError(f"caption file has no captions: {path}")
    return caps


@dataclass
class Batch:
    """One training batch.

    images: list of (B, 3, S, S) float tensors in [-1, 1], one per requested size, ascending.
    caption_idx: (B,) indices into the dataset's flat caption list (one random caption each);
        None for an image-only dataset.
    wrong_caption_idx: (B,) captions of other images (another class where classes exist).
    """

    images: list[torch.Tensor]
    caption_idx: torch.Tensor | None = None
    wrong_caption_idx: torch.Tensor | None = None


def cached_images(
    cache_path: Path,
    keys: list[str],
    paths: list[Path],
    load_size: int,
    boxes: dict[str, tuple[float, float, float, float]] | None = None,
    progress: bool = True,
    desc: str = "caching images",
) -> np.ndarray:
    """(N, L, L, 3) uint8 images, from ``cache_path`` when it holds them, else loaded (bbox crop,
    resize, centre crop) and saved there atomically (a crash never leaves a half-written cache).
    """
    from tqdm import tqdm

    def build() -> np.ndarray:
        arr = np.empty((len(paths), load_size, load_size, 3), dtype=np.uint8)
        items = list(zip(keys, paths))
        for i, (k, p) in enumerate(tqdm(items, desc=desc, disable=not progress)):
            arr[i] = load_image(p, load_size, (boxes or {}).get(k))
        return arr

    shape = (len(keys), load_size, load_size, 3)
    return cached_array(cache_path, lambda s: s == shape, build)


def augment_pyramid(
    imgs: torch.Tensor,
    img_size: int,
    sizes: list[int],
    gen: torch.Generator | None = None,
    random_crop: bool = False,
    random_flip: bool = False,
) -> list[torch.Tensor]:
    """(B, L, L, 3) uint8 -> crop to ``img_size`` (random or centre), flip at random, and
    return the batch at each of ``sizes`` (ascending) as floats in [-1, 1] (area downsampling,
    so every scale shows the same crop)."""
    load_size, s = imgs.shape[1], img_size
    if load_size != s:
        if random_crop:
            off = torch.randint(0, load_size - s + 1, (len(imgs), 2), generator=gen)
        else:
            off = torch.full((len(imgs), 2), (load_size - s) // 2)
        imgs = torch.stack(
            [im[int(y) : int(y) + s, int(x) : int(x) + s] for im, (y, x) in zip(imgs, off)]
        )
    x = imgs.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (B, 3, s, s)
    if random_flip:
        flip = torch.rand(len(x), generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
    out = []
    for size in sorted(sizes):
        if size > s:
            raise ValueError(f"requested {size}px from a dataset loaded at {s}px")
        out.append(x if size == s else F.interpolate(x, size=(size, size), mode="area"))
    return out


def default_cache_dir(root: Path) -> Path:
    """``$STACKGAN_CACHE/<name>-<digest>`` when that variable is set; else
    ``<root>/.stackgan-cache`` when the dataset folder is writable, else a per-user cache
    (shared datasets are often read-only). A folder without write bits counts as read-only
    even for root, who could write into it anyway."""
    env = os.environ.get("STACKGAN_CACHE")
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    if root.is_file():  # a packed dataset: the cache goes beside it, one folder per pack
        folder = root.parent
        writable = os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
        if not env and writable:
            return folder / ".stackgan-cache" / f"{root.name}-{digest}"
    else:
        writable = os.access(root, os.W_OK) and bool(root.stat().st_mode & 0o222)
        if not env and writable:
            return root / ".stackgan-cache"
    base = Path(env) if env else Path.home() / ".cache" / "stackgan"
    return base / f"{root.name}-{digest}"
