"""``stackgan data check DIR``: every problem of a dataset folder, by path, before training.

Reads each split the way training does (any layout of :mod:`stackgan.data.layouts`), but instead
of stopping at the first problem it lists them all: missing images, images that cannot be
decoded, images without captions (missing or empty caption files, COCO images with no
annotation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stackgan.data.io import DatasetError
from stackgan.data.layouts import detect_layout, read_index
from stackgan.utils.images import ImageFileError, open_image


@dataclass
class SplitReport:
    split: str
    num_images: int = 0
    num_captions: int = 0
    problems: list[str] = field(default_factory=list)


def _readable(path: Path) -> str | None:
    """None when the image decodes, else the reason."""
    try:
        open_image(path)  # decodes fully (truncated files fail); JPEG and PNG only
    except (ImageFileError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_dataset(
    root: str | Path,
    layout: str = "auto",
    splits: tuple[str, ...] = ("train", "test"),
    progress: bool = True,
) -> tuple[str, list[SplitReport]]:
    """(the layout, a report per split). A split whose index cannot be read at all (say, a
    missing split file) is reported as one problem."""
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    layout = detect_layout(root) if layout == "auto" else layout
    reports = []
    for split in splits:
        rep = SplitReport(split)
        try:
            index = read_index(root, split, layout, problems=rep.problems)
        except DatasetError as exc:
            if "lists no images" not in str(exc) or not rep.problems:
                rep.problems.append(str(exc))
            reports.append(rep)
            continue
        for path, caps in zip(
            tqdm(index.image_paths, desc=f"checking {split}", disable=not progress),
            index.captions,
        ):
            reason = _readable(path)
            if reason is not None:  # not usable: training would stop at it
                rep.problems.append(f"unreadable image: {path} ({reason})")
                continue
            rep.num_images += 1
            rep.num_captions += len(caps)
        reports.append(rep)
    return layout, reports
