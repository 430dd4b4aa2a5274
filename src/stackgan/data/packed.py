"""Packed datasets: one file that carries a dataset's splits to another machine.

``stackgan data pack ROOT --out birds.pack`` reads every split the way training does (the same
bounding-box crops and resizes, at the load sizes training asks for: 76 px for a 64 px Stage-I
with random crops, 304 for a 256 px Stage-II) and writes them, with the captions, class ids and
keys, into one zip file. ``data.root: birds.pack`` then trains from it directly, with no dataset
folder: a GPU machine or a cluster node needs only that file.

Image formats: ``raw`` (uint8 arrays, the exact pixels of the unpacked dataset: the same seed
gives identical batches), ``png`` (lossless, smaller) and ``jpeg`` (lossy, the smallest; for
moving a large dataset when exact pixels do not matter).

Layout of the zip (stored, not compressed: images are compressed already)::

    meta.json                      format, version, per split: keys, captions, class ids, sizes
    <split>/<size>.npy             raw: (N, S, S, 3) uint8
    <split>/<size>/<i>.png|.jpg    png / jpeg: one file per image
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from stackgan.data.io import DatasetError, load_image
from stackgan.data.layouts import read_index
from stackgan.utils.cache import atomic_write

PACK_FORMAT = "stackgan-pack"
PACK_VERSION = 1
PACK_SUFFIX = ".pack"
FORMATS = ("raw", "png", "jpeg")
META = "meta.json"


def is_pack(path: str | Path) -> bool:
    """Whether ``path`` is a packed dataset file (by name; :func:`read_pack` checks the rest)."""
    p = Path(path)
    return p.suffix == PACK_SUFFIX and p.is_file()


@dataclass
class PackedSplit:
    """One split read from a pack: what :class:`~stackgan.data.cub.TextImageDataset` needs."""

    keys: list[str]
    captions: list[list[str]]
    class_ids: list[int] | None
    images: np.ndarray  # (N, S, S, 3) uint8 at the asked load size
    bbox_crop: bool


def pack_dataset(
    root: str | Path,
    out: str | Path,
    sizes: Iterable[int] = (76, 304),
    splits: Iterable[str] = ("train", "test"),
    image_format: str = "raw",
    quality: int = 90,
    layout: str = "auto",
    bbox_crop: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``root``'s ``splits`` at the load ``sizes`` into the pack ``out``; returns its
    metadata. Images are read (cropped, resized) exactly as training reads them."""
    if image_format not in FORMATS:
        raise DatasetError(f"unknown pack format {image_format!r}; one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != PACK_SUFFIX:
        raise DatasetError(f"--out {out}: a pack's name ends in {PACK_SUFFIX}")
    sizes = sorted({int(s) for s in sizes})
    meta: dict[str, Any] = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "source": Path(root).name,
        "image_format": image_format,
        "bbox_crop": bbox_crop,
        "sizes": sizes,
        "splits": {},
    }

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for split in splits:
                index = read_index(root, split, layout)
                boxes = index.bboxes if bbox_crop else {}
                meta["splits"][split] = {
                    "keys": index.keys,
                    "captions": index.captions,
                    "class_ids": index.class_ids,
                    "bbox_crop": bool(boxes),
                }
                for size in sizes:
                    images = np.empty((len(index.keys), size, size, 3), dtype=np.uint8)
                    items = list(zip(index.keys, index.image_paths))
                    desc = f"packing {split} at {size}px"
                    for i, (k, p) in enumerate(tqdm(items, desc=desc, disable=not progress)):
                        images[i] = load_image(p, size, boxes.get(k))
                    _write_images(zf, f"{split}/{size}", images, image_format, quality, progress)
            zf.writestr(META, json.dumps(meta))

    atomic_write(out, write)
    return meta


def _write_images(
    zf: zipfile.ZipFile, prefix: str, images: np.ndarray, fmt: str, quality: int, progress: bool
) -> None:
    if fmt == "raw":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(images))
        zf.writestr(f"{prefix}.npy", buf.getvalue())
        return
    for i, img in enumerate(tqdm(images, desc=f"encoding {prefix}", disable=not progress)):
        buf = io.BytesIO()
        if fmt == "png":
            Image.fromarray(img).save(buf, format="PNG", compress_level=6)
        else:
            Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=0)
        zf.writestr(f"{prefix}/{i}.{'png' if fmt == 'png' else 'jpg'}", buf.getvalue())


def read_pack_meta(path: str | Path) -> dict[str, Any]:
    """A pack's metadata; a clear error for a file that is not one."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta: dict[str, Any] = json.loads(zf.read(META))
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not a readable stackgan pack ({exc})") from exc
    if meta.get("format") != PACK_FORMAT:
        raise DatasetError(f"{path} is not a stackgan pack (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > PACK_VERSION:
        raise DatasetError(
            f"{path} is pack version {meta['version']}; this stackgan reads up to {PACK_VERSION}"
        )
    return meta


def read_pack(
    path: str | Path, split: str, load_size: int, max_images: int = 0, progress: bool = True
) -> PackedSplit:
    """The images of ``split`` at ``load_size`` and their captions, classes and keys."""
    path = Path(path)
    meta = read_pack_meta(path)
    if split not in meta["splits"]:
        raise DatasetError(f"{path} has no {split!r} split (it has {', '.join(meta['splits'])})")
    if load_size not in meta["sizes"]:
        have = ", ".join(f"{s}px" for s in meta["sizes"])
        raise DatasetError(
            f"{path} holds {have} images; this config reads {load_size}px "
            f"(repack with --sizes {','.join(map(str, sorted({*meta['sizes'], load_size})))})"
        )
    info = meta["splits"][split]
    n = len(info["keys"]) if not max_images else min(max_images, len(info["keys"]))
    prefix = f"{split}/{load_size}"
    try:
        with zipfile.ZipFile(path) as zf:
            if meta["image_format"] == "raw":
                images = np.load(io.BytesIO(zf.read(f"{prefix}.npy")), allow_pickle=False)[:n]
            else:
                ext = "png" if meta["image_format"] == "png" else "jpg"
                images = np.empty((n, load_size, load_size, 3), dtype=np.uint8)
                for i in tqdm(range(n), desc=f"decoding {prefix}", disable=not progress):
                    with Image.open(io.BytesIO(zf.read(f"{prefix}/{i}.{ext}"))) as im:
                        images[i] = np.asarray(im.convert("RGB"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read {prefix} ({exc})") from exc
    if images.shape != (n, load_size, load_size, 3) or images.dtype != np.uint8:
        raise DatasetError(f"{path}: {prefix} holds {images.shape} {images.dtype} images")
    classes = info["class_ids"]
    return PackedSplit(
        keys=info["keys"][:n],
        captions=info["captions"][:n],
        class_ids=None if classes is None else classes[:n],
        images=images,
        bbox_crop=bool(info["bbox_crop"]),
    )
