"""Dataset folder layouts users already have, read into one :class:`Index`.

- ``cub`` (CUB-200-2011 ``birds`` as the StackGAN repositories expect it, and ``shapes``):
  ``CUB_200_2011/images/<class>/<name>.jpg``, ``images.txt``, ``bounding_boxes.txt``,
  ``text/<class>/<name>.txt``, ``train|test/filenames.pickle`` and ``class_info.pickle``.
- ``flowers`` (Oxford-102 as Reed et al. / StackGAN distribute it): ``jpg/image_XXXXX.jpg``,
  ``text_c10/class_XXXXX/image_XXXXX.txt`` and the same split pickles; the class is the
  ``class_XXXXX`` folder when ``class_info.pickle`` is absent.
- ``coco`` (COCO 2014 captions): ``annotations/captions_{train,val}2014.json`` with
  ``train2014/`` and ``val2014/``; ``train`` reads train2014, ``test`` reads val2014 (the
  convention of the text-to-image literature). No classes: mismatched captions come from
  another image.
- ``folder`` (your own data): images anywhere under the folder, each with a ``.txt`` of captions
  (one per line) beside it with the same stem. ``train.txt`` / ``test.txt`` listing image paths
  (relative to the folder) choose the splits; without them every tenth image (sorted order) is
  test.

``detect_layout`` picks the layout from what is in the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stackgan.data.folder import list_images
from stackgan.data.index_files import (
    class_labels,
    read_bboxes,
    read_coco,
    read_image_list,
    read_split_list,
)
from stackgan.data.io import IMAGE_EXTS, DatasetError, read_captions, read_pickle

LAYOUTS = ("cub", "flowers", "coco", "folder")
FOLDER_TEST_EVERY = 10  # generic folders without split files: every 10th image is test
COCO_SPLIT_YEAR = {"train": "train2014", "test": "val2014"}


@dataclass
class Index:
    """One split of a dataset: parallel lists, one entry per image.

    keys: stable identifiers (cache keys, attribute lookups).
    image_paths: where each image is.
    captions: each image's captions (at least one).
    class_ids: a class per image, or None when the dataset has no classes.
    bboxes: CUB bounding boxes (x, y, w, h) by key, for the reference crop.
    """

    keys: list[str]
    image_paths: list[Path]
    captions: list[list[str]]
    class_ids: list[int] | None = None
    bboxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def detect_layout(root: Path) -> str:
    """The layout of ``root`` from its contents (see the module docstring)."""
    if (root / "CUB_200_2011").is_dir():
        return "cub"
    if (root / "jpg").is_dir() and (root / "text_c10").is_dir():
        return "flowers"
    if any((root / "annotations").glob("captions_*2014.json")):
        return "coco"
    return "folder"


def read_index(
    root: str | Path,
    split: str,
    layout: str = "auto",
    max_images: int = 0,
    problems: list[str] | None = None,
) -> Index:
    """Read the images, captions and classes of ``split`` ("train" or "test") of ``root``.

    The first missing image or caption file raises :class:`DatasetError`; with a ``problems``
    list, each one is recorded there instead (by path) and that image is left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder not found: {root} (the shapes data: `stackgan data shapes --out "
            f"{root}`; CUB birds, Oxford-102 flowers and the other layouts: docs/data.md)"
        )
    if layout == "auto":
        layout = detect_layout(root)
    readers = {"cub": _cub, "flowers": _flowers, "coco": _coco, "folder": _folder}
    if layout not in readers:
        raise DatasetError(f"unknown dataset layout {layout!r}; one of {', '.join(LAYOUTS)}")
    index = readers[layout](root, split, max_images, _Problems(problems, root))
    if not index.keys:
        raise DatasetError(f"split {split!r} of {root} ({layout} layout) lists no images")
    return index


# ----------------------------------------------------------------------------------------------
class _Problems:
    """Raise on the first problem, or collect them all (``stackgan data check``)."""

    def __init__(self, sink: list[str] | None, root: Path) -> None:
        self.sink = sink
        self.root = root.resolve()  # a dataset folder that is itself a link is fine

    def inside(self, path: Path) -> bool:
        """Whether ``path``, links resolved, lies inside the dataset folder; a problem if not
        (a caption file linked to /etc/passwd must not become training captions)."""
        try:
            ok = path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):  # a link loop
            ok = False
        if not ok:
            self(f"outside the dataset folder (a link or '..' leaving {self.root}): {path}")
        return ok

    def file(self, path: Path) -> Path:
        """An index file (split pickle, images.txt, annotations): must be inside the folder."""
        if path.exists() and not self.inside(path):
            raise DatasetError(f"outside the dataset folder: {path}")
        return path

    def __call__(self, message: str) -> None:
        if self.sink is None:
            raise DatasetError(message)
        self.sink.append(message)

    def note(self, message: str) -> None:
        """Something training can skip but a check should report."""
        if self.sink is not None:
            self.sink.append(message)

    def captions(self, path: Path) -> list[str] | None:
        if path.exists() and not self.inside(path):
            return None
        try:
            return read_captions(path)
        except DatasetError as exc:
            self(str(exc))
            return None


def _split_keys(
    root: Path, split: str, max_images: int, problem: _Problems
) -> tuple[list[str], list[int] | None]:
    """Keys and class labels from the StackGAN split pickles (cub and flowers layouts)."""
    keys = read_pickle(problem.file(root / split / "filenames.pickle"))
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise DatasetError(f"{root / split / 'filenames.pickle'}: expected a list of str")
    if max_images:
        keys = keys[:max_images]
    class_file = problem.file(root / split / "class_info.pickle")
    if not class_file.exists():
        return keys, None
    return keys, class_labels(read_pickle(class_file), len(keys), class_file)


def _cub_image_index(root: Path, problem: _Problems) -> list[tuple[str, str]]:
    """(image id, path relative to images/) from ``images.txt``; empty when it is absent."""
    index_file = problem.file(root / "CUB_200_2011" / "images.txt")
    return read_image_list(index_file) if index_file.exists() else []


def _keep(index: Index, labels: list[int] | None, keep: list[bool]) -> Index:
    """Drop the images that had problems (``keep`` False), keeping the lists parallel."""
    pick = [i for i, k in enumerate(keep) if k]
    index.keys = [index.keys[i] for i in pick]
    index.image_paths = [index.image_paths[i] for i in pick]
    index.captions = [index.captions[i] for i in pick]
    index.class_ids = [labels[i] for i in pick] if labels is not None else None
    return index


def _cub(root: Path, split: str, max_images: int, problem: _Problems) -> Index:
    keys, labels = _split_keys(root, split, max_images, problem)
    base = root / "CUB_200_2011" / "images"
    listed = _cub_image_index(root, problem)
    by_key = {os.path.splitext(rel)[0]: rel for _, rel in listed}
    paths, captions, keep = [], [], []
    for k in keys:
        if k in by_key:
            path = base / by_key[k]
        else:  # no images.txt entry: the first extension that exists (reported as .jpg if none)
            found = (base / f"{k}{ext}" for ext in IMAGE_EXTS if (base / f"{k}{ext}").exists())
            path = next(found, base / f"{k}.jpg")
        ok = path.exists()
        if not ok:
            problem(f"missing image: {path}")
        ok = ok and problem.inside(path)
        caps = problem.captions(root / "text" / f"{k}.txt")
        paths.append(path)
        captions.append(caps or [])
        keep.append(ok and caps is not None)
    boxes: dict[str, tuple[float, float, float, float]] = {}
    box_file = problem.file(root / "CUB_200_2011" / "bounding_boxes.txt")
    if box_file.exists():
        id_to_key = {i: os.path.splitext(rel)[0] for i, rel in listed}
        boxes = read_bboxes(box_file, id_to_key)
    return _keep(Index(keys, paths, captions, labels, boxes), labels, keep)


def _flowers(root: Path, split: str, max_images: int, problem: _Problems) -> Index:
    keys, labels = _split_keys(root, split, max_images, problem)
    # text_c10/class_XXXXX/image_XXXXX.txt: index the caption files by image name
    text_by_name = {p.stem: p for p in (root / "text_c10").glob("class_*/image_*.txt")}
    paths, captions, folder_labels, keep = [], [], [], []
    for k in keys:
        name = Path(k).name  # keys appear as "image_06734", "jpg/image_06734" or "class_00077/..."
        img = root / "jpg" / f"{name}.jpg"
        ok = img.exists()
        if not ok:
            problem(f"missing image: {img}")
        ok = ok and problem.inside(img)
        caps = None
        if name in text_by_name:
            caps = problem.captions(text_by_name[name])
        else:
            problem(f"missing caption file: {root / 'text_c10'}/class_*/{name}.txt")
        paths.append(img)
        captions.append(caps or [])
        folder_labels.append(
            int(text_by_name[name].parent.name.removeprefix("class_")) if caps else -1
        )
        keep.append(ok and caps is not None)
    return _keep(
        Index(keys, paths, captions), labels if labels is not None else folder_labels, keep
    )


def _coco(root: Path, split: str, max_images: int, problem: _Problems) -> Index:
    if split not in COCO_SPLIT_YEAR:
        raise DatasetError(f"COCO has splits train and test (val2014), not {split!r}")
    year = COCO_SPLIT_YEAR[split]
    ann_file = problem.file(root / "annotations" / f"captions_{year}.json")
    if not ann_file.exists():
        raise DatasetError(f"missing caption file: {ann_file}")
    images, caps = read_coco(ann_file)
    keys, paths, captions = [], [], []
    for image_id, file_name in images:
        path = root / year / file_name
        if image_id not in caps:
            problem.note(f"image without captions in {ann_file.name}: {path}")
            continue  # uncaptioned images cannot train a text-to-image model
        if not path.exists():
            problem(f"missing image: {path}")
            continue
        if not problem.inside(path):
            continue
        keys.append(f"{year}/{Path(file_name).stem}")
        paths.append(path)
        captions.append(caps[image_id])
        if max_images and len(keys) == max_images:
            break
    return Index(keys, paths, captions, None)


def _folder(root: Path, split: str, max_images: int, problem: _Problems) -> Index:
    if split not in ("train", "test"):
        raise DatasetError(f"a folder dataset has splits train and test, not {split!r}")

    split_file = problem.file(root / f"{split}.txt")
    if split_file.exists():
        images = [root / r for r in read_split_list(split_file)]
    else:
        is_test = split == "test"
        images = [
            p for i, p in enumerate(list_images(root)) if (i % FOLDER_TEST_EVERY == 0) == is_test
        ]
    if max_images:
        images = images[:max_images]
    keys = [str(p.relative_to(root).with_suffix("")) for p in images]
    captions, keep = [], []
    for p in images:
        ok = p.exists()
        if not ok:
            problem(f"missing image: {p}")
        ok = ok and problem.inside(p)
        caps = problem.captions(p.with_suffix(".txt"))
        captions.append(caps or [])
        keep.append(ok and caps is not None)
    return _keep(Index(keys, images, captions), None, keep)
