"""The ``shapes`` dataset's judge: text-image consistency by pixel statistics against the spec's
palettes, and per attribute by a classifier trained on the real renders
(:mod:`stackgan.metrics.shapes_attributes`). Registered for ``shapes`` folders in
:mod:`stackgan.metrics.judges`; nothing else in the package knows about ``shapes``.

For a generated image: the background colour is the palette entry nearest to the median of the
image's border; the object colour is the object-palette entry that most of the clearly
non-background pixels are nearest to (the pattern colour covers under half of an object, so the
object colour dominates a correct image). Each judgement is compared with the attributes of the
test image whose caption conditioned the sample.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stackgan.data import shapes
from stackgan.data.io import DatasetError, read_pickle
from stackgan.metrics import shapes_attributes

BORDER_FRAC = 0.04  # outer 4% of each side is read as background
FOREGROUND_DIST = 60.0  # RGB distance from the background beyond which a pixel is "object"
MIN_FOREGROUND_FRAC = 0.003  # fewer object pixels than this: no object was drawn

_OBJ_NAMES = list(shapes.OBJECT_PALETTE)
_OBJ_RGB = np.array(list(shapes.OBJECT_PALETTE.values()), dtype=np.float32)
_BG_NAMES = list(shapes.BACKGROUND_PALETTE)
_BG_RGB = np.array(list(shapes.BACKGROUND_PALETTE.values()), dtype=np.float32)


@dataclass
class Judgement:
    background: str
    object_color: str | None  # None when no object pixels were found


def judge_image(img: np.ndarray) -> Judgement:
    """(H, W, 3) uint8 image -> the background and dominant object colour it shows."""
    x = img.astype(np.float32)
    h, w, _ = x.shape
    b = max(1, round(BORDER_FRAC * min(h, w)))
    border = np.concatenate(
        [
            x[:b].reshape(-1, 3),
            x[-b:].reshape(-1, 3),
            x[:, :b].reshape(-1, 3),
            x[:, -b:].reshape(-1, 3),
        ]
    )
    bg_rgb = np.median(border, axis=0)
    bg = _BG_NAMES[int(np.argmin(((_BG_RGB - bg_rgb) ** 2).sum(1)))]
    pix = x.reshape(-1, 3)
    fg = pix[np.sqrt(((pix - bg_rgb) ** 2).sum(1)) > FOREGROUND_DIST]
    if len(fg) < MIN_FOREGROUND_FRAC * h * w:
        return Judgement(bg, None)
    nearest = np.argmin(((fg[:, None, :] - _OBJ_RGB[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(_OBJ_NAMES))
    return Judgement(bg, _OBJ_NAMES[int(np.argmax(counts))])


def names_background(caption: str, background: str) -> bool:
    """Whether ``caption`` states the image's background (captions may leave it out)."""
    words = shapes.BACKGROUND_WORDS[background]
    return any(
        f"{w} background" in caption
        or f"{w} backdrop" in caption
        or f"background is {w}" in caption
        for w in words
    )


def test_captions(
    data_root: str | Path, split: str = "test", num: int = 0, seed: int = 0
) -> list[tuple[str, shapes.ShapeAttributes, bool]]:
    """(caption, attributes, compositional) for images of ``split``: for each image one of its
    captions that names the background (so the background is a fair question), chosen by
    ``seed``. ``compositional`` marks held-out (shape, colour) pairs."""
    root = Path(data_root)
    if not (root / "meta.json").is_file() or not (root / "attributes.jsonl").is_file():
        raise DatasetError(
            f"{root} is not a shapes dataset (no meta.json / attributes.jsonl): the consistency "
            "judge needs the ground truth that `stackgan data shapes` writes"
        )
    meta = json.loads((root / "meta.json").read_text())
    held = {tuple(p) for p in meta["heldout_pairs"]}
    attrs = shapes.load_attributes(root)
    keys = read_pickle(root / split / "filenames.pickle")
    if not isinstance(keys, list):
        raise DatasetError(f"{root / split / 'filenames.pickle'}: expected a list of names")
    rng = random.Random(seed)
    out = []
    for k in keys:
        a = attrs[k]
        caps = [c.strip() for c in (root / "text" / f"{k}.txt").read_text().splitlines()]
        caps = [c for c in caps if c and names_background(c, a.background)]
        if not caps:
            continue
        out.append((rng.choice(caps), a, (a.shape, a.color) in held))
    if num:
        out = out[:num]
    return out


def score(
    images: list[np.ndarray], attrs: list[shapes.ShapeAttributes], compositional: list[bool]
) -> dict[str, Any]:
    """Accuracy of object colour and background over all images and the compositional subset."""
    judged = [judge_image(im) for im in images]
    obj = np.array([j.object_color == a.color for j, a in zip(judged, attrs)])
    bg = np.array([j.background == a.background for j, a in zip(judged, attrs)])
    comp = np.array(compositional, dtype=bool)

    def frac(v: np.ndarray) -> float | None:
        return float(v.mean()) if len(v) else None

    sizes = np.array([a.size for a in attrs])
    return {
        "num_images": len(images),
        "object_color_acc": frac(obj),
        "background_acc": frac(bg),
        "num_compositional": int(comp.sum()),
        "compositional_object_color_acc": frac(obj[comp]),
        "compositional_background_acc": frac(bg[comp]),
        # where it fails: small objects are the hard part of the object-colour question
        "object_color_acc_by_size": {
            size: frac(obj[sizes == size]) for size in shapes.SIZES if (sizes == size).any()
        },
    }


SHAPES_EXAMPLE_SEED = 3  # fixed: the serve page shows the same examples every time
MAX_EXAMPLE_CHARS = 80  # short captions fit the page's buttons


class ShapesJudge:
    """The :class:`stackgan.metrics.judges.Judge` of a ``shapes`` folder: the truth behind a
    caption is its image's :class:`~stackgan.data.shapes.ShapeAttributes`."""

    name = "shapes"
    # a shapes class (shape and colour) leaves background, size, position and pattern to tell
    # its images apart: masking same-class pairs in the matcher's loss would drop the very
    # negatives that teach those
    class_mask = False

    def captions(
        self, root: str | Path, split: str = "test", num: int = 0, seed: int = 0
    ) -> list[tuple[str, shapes.ShapeAttributes, bool]]:
        return test_captions(root, split, num, seed)

    def score(self, images: list[np.ndarray], items: list[tuple[str, Any, bool]]) -> dict[str, Any]:
        return score(images, [a for _, a, _ in items], [c for _, _, c in items])

    def summary(self, detail: dict[str, Any]) -> tuple[float, dict[str, float | None]]:
        """The headline (mean of the object-colour and background accuracies, what a training
        run's model-best follows) and the named parts of :meth:`score`'s result."""
        parts: dict[str, float | None] = {
            "object": detail["object_color_acc"],
            "background": detail["background_acc"],
        }
        for size, acc in detail["object_color_acc_by_size"].items():
            parts[f"object_{size}"] = acc
        parts["compositional_object"] = detail["compositional_object_color_acc"]
        parts["compositional_background"] = detail["compositional_background_acc"]
        return (detail["object_color_acc"] + detail["background_acc"]) / 2, parts

    def describe(self, image: np.ndarray, truth: shapes.ShapeAttributes) -> tuple[bool, str]:
        """What the palette judge reads in one image, and whether it is the caption's."""
        j = judge_image(image)
        ok = j.object_color == truth.color and j.background == truth.background
        return ok, f"{j.object_color} on {j.background}"

    def attributes(
        self,
        images: list[np.ndarray],
        items: list[tuple[str, Any, bool]],
        root: str | Path,
        progress: bool = True,
    ) -> dict[str, Any]:
        return shapes_attributes.attribute_consistency(
            images, [a for _, a, _ in items], [c for _, _, c in items], root, progress
        )

    def example_captions(self, num: int, exclude: list[str]) -> list[str]:
        """``num`` short captions from the dataset's own caption grammar, none in ``exclude``."""
        out: list[str] = []
        for text in _generated_captions():
            if len(out) >= num:
                break
            if len(text) <= MAX_EXAMPLE_CHARS and text not in exclude and text not in out:
                out.append(text)
        return out


def _generated_captions() -> Iterator[str]:
    rng = random.Random(SHAPES_EXAMPLE_SEED)
    while True:
        yield shapes.caption(shapes.sample_attributes(rng), rng)
