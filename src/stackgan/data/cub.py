"""Text-image datasets in the CUB-200-2011 ``birds`` layout of the original StackGAN code.

Layout (``shapes`` is written the same way, without bounding boxes)::

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
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from stackgan.utils.cache import cached_array
from stackgan.utils.safe_pickle import safe_load
from stackgan.utils.textio import TextFileError, read_text_file

LOAD_RATIO = 76 / 64  # reference code: load at 76 for 64, 304 for 256, then random crop
BBOX_SCALE = 0.75  # reference code: crop half-side = 0.75 * max(bbox w, bbox h)
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CACHE_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder that cannot be read, with the path of the problem."""


def _read_pickle(path: Path) -> object:
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
        with Image.open(path) as im:
            img = im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"missing image: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"corrupt or unreadable image: {path} ({exc})") from exc
    except Image.DecompressionBombError as exc:  # a few KB that would decode to gigabytes
        raise DatasetError(f"image too large to decode safely: {path} ({exc})") from exc
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
        from stackgan.data.layouts import read_index

        self.root = Path(root)
        self.split = split
        self.img_size = img_size
        self.random_crop = random_crop
        self.random_flip = random_flip
        self.load_size = round(img_size * LOAD_RATIO) if random_crop else img_size

        index = read_index(self.root, split, layout, max_images)
        self.keys: list[str] = index.keys
        self.image_paths = index.image_paths
        classes = index.class_ids
        self.class_ids = torch.tensor(classes if classes is not None else range(len(self.keys)))
        self.has_classes = classes is not None

        # Captions: a flat list with per-image offsets, so any number per image works.
        self.captions: list[str] = []
        offsets, counts = [], []
        for caps in index.captions:
            offsets.append(len(self.captions))
            counts.append(len(caps))
            self.captions.extend(caps)
        self.caption_offsets = torch.tensor(offsets)
        self.caption_counts = torch.tensor(counts)

        self.bboxes = index.bboxes if bbox_crop else {}
        self.bbox_crop = bool(self.bboxes)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.root)
        self.images = torch.from_numpy(self._load_images(progress))  # (N, L, L, 3) uint8

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
        """Image indices whose captions do not describe ``idx``: another class where labels exist
        (the matching-aware discriminator must see text that is really wrong), else another
        image."""
        n = len(self)
        other = torch.randint(0, n, (len(idx),), generator=gen)
        for _ in range(100):  # rejection sampling; converges in a step or two
            bad = (self.class_ids[other] == self.class_ids[idx]) | (other == idx)
            if not bad.any():
                break
            other[bad] = torch.randint(0, n, (int(bad.sum()),), generator=gen)
        return other

    def hard_wrong_captions(
        self,
        idx: torch.Tensor,
        caption_idx: torch.Tensor,
        emb: torch.Tensor,
        candidates: int,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Hard mismatched captions: for each image, draw ``candidates`` captions of other
        images (other classes, as :meth:`mismatched`) and keep the one whose embedding is most
        cosine-similar to the image's own caption ``caption_idx``.

        Args:
            idx: (B,) image indices; caption_idx: (B,) their captions.
            emb: (num_captions, D) caption embeddings (any device).

        Returns:
            (B,) caption indices.
        """
        b = len(idx)
        cand = self.random_captions(self.mismatched(idx.repeat_interleave(candidates), gen), gen)
        cand = cand.view(b, candidates)  # (B, K)
        dev = emb.device
        e_right = F.normalize(emb[caption_idx.to(dev)].float(), dim=-1)  # (B, D)
        e_cand = F.normalize(emb[cand.to(dev)].float(), dim=-1)  # (B, K, D)
        best = torch.einsum("bd,bkd->bk", e_right, e_cand).argmax(dim=1).cpu()  # (B,)
        return cand[torch.arange(b), best]

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


def default_cache_dir(root: Path) -> Path:
    """``$STACKGAN_CACHE/<name>-<digest>`` when that variable is set; else
    ``<root>/.stackgan-cache`` when the dataset folder is writable, else a per-user cache
    (shared datasets are often read-only). A folder without write bits counts as read-only
    even for root, who could write into it anyway."""
    env = os.environ.get("STACKGAN_CACHE")
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    writable = os.access(root, os.W_OK) and bool(root.stat().st_mode & 0o222)
    if not env and writable:
        return root / ".stackgan-cache"
    base = Path(env) if env else Path.home() / ".cache" / "stackgan"
    return base / f"{root.name}-{digest}"
