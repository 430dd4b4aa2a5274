"""Validated readers of the small index files a dataset folder carries: CUB's ``images.txt``
and ``bounding_boxes.txt``, the split pickles' class labels, COCO's caption annotations and a
folder's ``train.txt`` / ``test.txt``.

Each reads strict UTF-8 (:func:`stackgan.utils.textio.read_text_file`) and checks every field
it uses (type, range, finiteness) as it reads, so a damaged or crafted file is one
:class:`~stackgan.data.io.DatasetError` naming the file and the line or entry, never an
``IndexError`` or ``OverflowError`` later in training.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from stackgan.data.io import DatasetError
from stackgan.utils.textio import TextFileError, read_text_file

MAX_ID = (1 << 63) - 1  # ids must fit an int64 (numpy, torch and JSON readers elsewhere)
MAX_JSON_DEPTH = 64  # COCO annotations nest 3 deep


def read_text(path: Path) -> str:
    """A UTF-8 index file; a clear error for a missing, binary or non-UTF-8 one."""
    try:
        return read_text_file(path)
    except FileNotFoundError:
        raise DatasetError(f"missing index file: {path}") from None
    except TextFileError as exc:
        raise DatasetError(str(exc)) from None


def read_image_list(path: Path) -> list[tuple[str, str]]:
    """CUB ``images.txt``: (image id, path relative to ``images/``) per line."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path} line {n}: expected '<id> <image path>', got {line[:60]!r}")
        out.append((parts[0], parts[1].strip()))
    return out


def read_bboxes(
    path: Path, id_to_key: dict[str, str]
) -> dict[str, tuple[float, float, float, float]]:
    """CUB ``bounding_boxes.txt``: (x, y, w, h) by image key; boxes must be finite, x and y
    non-negative, w and h positive (an infinite box passed a check, then overflowed training)."""
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for n, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if len(parts) != 5 or parts[0] not in id_to_key:
            continue
        try:
            x, y, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise DatasetError(f"{path} line {n}: a bounding box of non-numbers") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)) or min(x, y) < 0 or min(w, h) <= 0:
            raise DatasetError(
                f"{path} line {n}: bounding box {x} {y} {w} {h} must be finite, with x, y >= 0 "
                "and w, h > 0"
            )
        boxes[id_to_key[parts[0]]] = (x, y, w, h)
    return boxes


def class_labels(classes: Any, count: int, path: Path) -> list[int]:
    """The first ``count`` class ids of a ``class_info.pickle``: whole, finite numbers."""
    if not isinstance(classes, (list, tuple, np.ndarray)):
        raise DatasetError(f"{path}: expected a list of class ids")
    labels = []
    for i, c in enumerate(list(classes)[:count]):
        ok = isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
        if not ok or not math.isfinite(float(c)) or float(c) != int(c) or abs(int(c)) > MAX_ID:
            raise DatasetError(f"{path}: class id {i} is {str(c)[:40]!r}, not a whole number")
        labels.append(int(c))
    if len(labels) != count:
        raise DatasetError(f"{path}: {len(labels)} labels for {count} images")
    return labels


def read_split_list(path: Path) -> list[str]:
    """A folder's ``train.txt`` / ``test.txt``: image paths, one per line."""
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]


def _depth_ok(obj: Any) -> bool:
    """Whether ``obj`` nests at most MAX_JSON_DEPTH levels (checked iteratively)."""
    stack = [(obj, 0)]
    while stack:
        cur, d = stack.pop()
        if d > MAX_JSON_DEPTH:
            return False
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur)
    return True


def _coco_id(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise DatasetError(f"{where} is {str(value)[:40]!r}, not an id in 0..2^63-1")
    return value


def read_coco(path: Path) -> tuple[list[tuple[int, str]], dict[int, list[str]]]:
    """COCO caption annotations: ([(image id, file name)] sorted by id, captions by image id)."""
    try:
        ann = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply") from None
    if not isinstance(ann, dict) or not _depth_ok(ann):
        raise DatasetError(f"{path}: expected a COCO annotation object at the top level")
    anns, imgs = ann.get("annotations", []), ann.get("images", [])
    if not isinstance(anns, list) or not isinstance(imgs, list):
        raise DatasetError(f"{path}: 'annotations' and 'images' must be lists")
    caps: dict[int, list[str]] = defaultdict(list)
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or "image_id" not in a:
            raise DatasetError(f"{path}: annotation {i} has no image_id")
        image_id = _coco_id(a["image_id"], f"{path}: annotation {i}'s image_id")
        text = a.get("caption", "")
        if isinstance(text, str) and text.strip():
            caps[image_id].append(text.strip())
    images = []
    for i, im in enumerate(imgs):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DatasetError(f"{path}: image {i} needs an id and a file_name")
        name = im["file_name"]
        if not isinstance(name, str) or not name or "\0" in name:
            raise DatasetError(f"{path}: image {i}'s file_name is not a file name")
        images.append((_coco_id(im["id"], f"{path}: image {i}'s id"), name))
    return sorted(images), dict(caps)
