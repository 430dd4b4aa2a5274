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
from stackgan.utils.archive import ArchiveError, read_member
from stackgan.utils.cache import atomic_write
from stackgan.utils.images import open_image

PACK_FORMAT = "stackgan-pack"
PACK_VERSION = 1
PACK_SUFFIX = ".pack"
FORMATS = ("raw", "png", "jpeg")
META = "meta.json"
NPY_HEADER_MAX = 1 << 16  # np.save writes a header of 128 bytes (up to 64 KiB is valid)
MAX_IMAGE_BYTES = 64 << 20  # one encoded PNG/JPEG in a pack


def is_pack(path: str | Path) -> bool:
    """Whether ``path`` is a packed dataset file (by name; :func:`read_pack` checks the rest)."""
    p = Path(path)
    return p.suffix == PACK_SUFFIX and p.is_file()


@dataclass
class PackedSplit:
    """One split read from a pack: what :class:`~stackgan.data.dataset.TextImageDataset` needs."""

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


MAX_META_BYTES = 1 << 30  # COCO's 400k captions are ~60 MB of JSON


def read_pack_meta(path: str | Path) -> dict[str, Any]:
    """A pack's metadata, checked field by field; a clear error for a file that is not one.
    ``meta.json`` is inflated in bounded chunks (see :func:`stackgan.utils.archive.read_member`)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(read_member(zf, META, MAX_META_BYTES))
    except ArchiveError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, RecursionError) as exc:
        # ValueError: invalid JSON or UTF-8; RecursionError: JSON nested thousands deep
        raise DatasetError(f"{path} is not a readable stackgan pack ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise DatasetError(f"{path} is not a stackgan pack (format {str(fmt)[:40]!r})")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DatasetError(f"{path}: meta.json field version must be an integer")
    if version > PACK_VERSION:
        raise DatasetError(
            f"{path} is pack version {version}; this stackgan reads up to {PACK_VERSION}"
        )
    _check_meta(meta, path)
    return meta


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value
    )


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    """Every field :func:`read_pack` uses, of the right type and consistent lengths."""

    def bad(field: str, want: str) -> DatasetError:
        return DatasetError(f"{path}: meta.json field {field} must be {want}")

    if meta.get("image_format") not in FORMATS:
        raise bad("image_format", f"one of {', '.join(FORMATS)}")
    sizes = meta.get("sizes")
    if (
        not isinstance(sizes, list)
        or not _is_list_of(sizes, int)
        or not all(0 < s <= 4096 for s in sizes)
    ):
        raise bad("sizes", "a list of image sizes in 1..4096")
    splits = meta.get("splits")
    if not isinstance(splits, dict):
        raise bad("splits", "a mapping of split names")
    for name, info in splits.items():
        if not isinstance(info, dict):
            raise bad(f"splits.{name}", "a mapping")
        keys, caps, classes = info.get("keys"), info.get("captions"), info.get("class_ids")
        if not isinstance(keys, list) or not _is_list_of(keys, str):
            raise bad(f"splits.{name}.keys", "a list of strings")
        if not isinstance(caps, list) or not all(_is_list_of(c, str) for c in caps):
            raise bad(f"splits.{name}.captions", "a list of lists of strings")
        if classes is not None and not _is_list_of(classes, int):
            raise bad(f"splits.{name}.class_ids", "null or a list of integers")
        if len(caps) != len(keys) or (classes is not None and len(classes) != len(keys)):
            raise bad(f"splits.{name}", "lists of one length (keys, captions, class_ids)")
        if not isinstance(info.get("bbox_crop"), bool):
            raise bad(f"splits.{name}.bbox_crop", "true or false")


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
                # the array is exactly N x S x S x 3 bytes plus a short header, no more
                limit = len(info["keys"]) * load_size * load_size * 3 + NPY_HEADER_MAX
                raw = read_member(zf, f"{prefix}.npy", limit)
                images = np.load(io.BytesIO(raw), allow_pickle=False)[:n]
            else:
                ext = "png" if meta["image_format"] == "png" else "jpg"
                limit = MAX_IMAGE_BYTES
                images = np.empty((n, load_size, load_size, 3), dtype=np.uint8)
                for i in tqdm(range(n), desc=f"decoding {prefix}", disable=not progress):
                    data = read_member(zf, f"{prefix}/{i}.{ext}", limit)
                    name = f"{path}:{prefix}/{i}"
                    size = (load_size, load_size)  # checked before decoding
                    images[i] = np.asarray(open_image(io.BytesIO(data), name, size))
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
