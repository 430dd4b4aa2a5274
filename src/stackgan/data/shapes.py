"""The embedded ``shapes`` dataset (spec: shared/specs/shapes-dataset.md, version 1).

Each image is a single anti-aliased object (shape, colour, size, position, fill pattern) on a
plain background, rendered at 256x256 from signed distance functions so edges are exact and
rendering is fast. Lower resolutions are area-downsampled from the 256 render. Ten captions per
image come from a grammar with several templates and synonyms. The dataset is written in the
CUB-200 folder layout, so the same loader serves ``shapes`` and ``birds``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SPEC_VERSION = 1
CANVAS = 256
NUM_CAPTIONS = 10

SHAPES = ("circle", "square", "triangle", "star", "diamond")
OBJECT_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
BACKGROUND_PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "black": (10, 10, 10),
    "gray": (128, 128, 128),
    "sky": (150, 200, 240),
    "sand": (225, 205, 160),
    "grass": (60, 110, 50),
}
SIZES = {"small": 0.25, "medium": 0.45, "large": 0.70}  # bounding-box side / canvas
POSITIONS = {  # object centre, fraction of width / height
    "center": (0.5, 0.5),
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
}
PATTERNS = ("solid", "striped", "dotted")
PATTERN_PERIOD = 8.0  # px at 256 (spec: stripe period and dot pitch)
STRIPE_WIDTH = 3.0  # px of each 8 px period: the object colour stays the majority
DOT_RADIUS = 2.0  # px

# Caption vocabulary (spec, "Synonyms, at least").
SIZE_WORDS = {
    "small": ["small", "tiny", "little"],
    "medium": ["medium", "medium-sized", "mid-sized"],
    "large": ["large", "big", "huge"],
}
SHAPE_WORDS = {
    "circle": ["circle", "disk", "round shape"],
    "square": ["square", "box"],
    "triangle": ["triangle"],
    "star": ["star"],
    "diamond": ["diamond", "rhombus"],
}
COLOR_WORDS = {name: [name] for name in OBJECT_PALETTE}
COLOR_WORDS["red"] = ["red", "crimson"]
COLOR_WORDS["purple"] = ["purple", "violet"]
BACKGROUND_WORDS = {
    "white": ["white"],
    "black": ["black"],
    "gray": ["gray", "grey"],
    "sky": ["sky blue", "light blue"],
    "sand": ["sand", "beige"],
    "grass": ["grass green", "dark green"],
}
POSITION_PHRASES = {
    "center": ["in the center", "in the middle of the picture", "in the centre of the image"],
    "left": ["on the left", "in the left of the picture", "on the left side"],
    "right": ["on the right", "in the right of the picture", "on the right side"],
    "top": ["at the top", "in the top of the picture", "near the top edge"],
    "bottom": ["at the bottom", "in the bottom of the picture", "near the bottom edge"],
}
MENTION_PROB = 0.8  # each optional attribute is named in most captions, not all


@dataclass(frozen=True)
class ShapeAttributes:
    """Everything that determines one ``shapes`` image."""

    shape: str
    color: str
    size: str
    position: str
    pattern: str
    pattern_color: str | None
    background: str

    @property
    def class_name(self) -> str:
        return f"{self.color}_{self.shape}"


def class_id(shape: str, color: str) -> int:
    """1-based class index of a (shape, colour) pair, the CUB-style class of an image."""
    return SHAPES.index(shape) * len(OBJECT_PALETTE) + list(OBJECT_PALETTE).index(color) + 1


def class_dir(shape: str, color: str) -> str:
    return f"{class_id(shape, color):03d}.{color}_{shape}"


def sample_attributes(rng: random.Random) -> ShapeAttributes:
    shape = rng.choice(SHAPES)
    color = rng.choice(list(OBJECT_PALETTE))
    size = rng.choice(list(SIZES))
    # A large object is always at the centre (spec).
    position = "center" if size == "large" else rng.choice(list(POSITIONS))
    pattern = rng.choice(PATTERNS)
    pattern_color = None
    if pattern != "solid":
        pattern_color = rng.choice([c for c in OBJECT_PALETTE if c != color])
    # Never the same name, nor the same RGB, as the object colour.
    backgrounds = [
        b for b, rgb in BACKGROUND_PALETTE.items() if b != color and rgb != OBJECT_PALETTE[color]
    ]
    background = rng.choice(backgrounds)
    return ShapeAttributes(shape, color, size, position, pattern, pattern_color, background)


# ----------------------------------------------------------------------------------------------
# Rendering


def _polygon_sdf(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) from points to a closed polygon (Inigo Quilez' form)."""
    d = np.full(px.shape, np.inf, dtype=np.float32)
    sign = np.ones(px.shape, dtype=np.float32)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dx, dy = wx - ex * t, wy - ey * t
        d = np.minimum(d, dx * dx + dy * dy)
        # Winding test: flip the sign each time a horizontal ray crosses this edge.
        c1 = py >= ay
        c2 = py < by
        c3 = ex * wy > ey * wx
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        sign = np.where(flip, -sign, sign)
    return np.sqrt(d) * sign


def _shape_sdf(
    shape: str, px: np.ndarray, py: np.ndarray, cx: float, cy: float, half: float
) -> np.ndarray:
    x, y = px - cx, py - cy
    if shape == "circle":
        return np.sqrt(x * x + y * y) - half
    if shape == "square":
        qx, qy = np.abs(x) - half, np.abs(y) - half
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        box: np.ndarray = outside + np.minimum(np.maximum(qx, qy), 0)
        return box
    if shape == "diamond":
        verts = np.array([(0, -half), (half, 0), (0, half), (-half, 0)], dtype=np.float32)
    elif shape == "triangle":
        verts = np.array([(0, -half), (half, half), (-half, half)], dtype=np.float32)
    elif shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, half, half * 0.45)
        verts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
        # Centre the star's bounding box vertically (its lowest points are above +half).
        verts[:, 1] += (half - verts[:, 1].max() - (half + verts[:, 1].min())) / 2
        verts = verts.astype(np.float32)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return _polygon_sdf(x, y, verts)


def render(attrs: ShapeAttributes, size: int = CANVAS) -> np.ndarray:
    """Render one image as uint8 (size, size, 3). Always renders at 256 and area-downsamples."""
    cx, cy = (f * CANVAS for f in POSITIONS[attrs.position])
    half = SIZES[attrs.size] * CANVAS / 2
    if CANVAS % size:
        raise ValueError(f"size must divide {CANVAS}, got {size}")
    f = CANVAS // size
    bg = np.array(BACKGROUND_PALETTE[attrs.background], dtype=np.float32)
    # Only the object's bounding box (plus the anti-aliasing margin) differs from the background,
    # so the distance field is evaluated and downsampled there alone. The box is aligned to the
    # downsampling factor so the result equals rendering the whole canvas and downsampling it.
    x0, x1 = max(int(cx - half) - 2, 0) // f * f, -(-min(int(cx + half) + 3, CANVAS) // f) * f
    y0, y1 = max(int(cy - half) - 2, 0) // f * f, -(-min(int(cy + half) + 3, CANVAS) // f) * f
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    # Coverage from the signed distance: a one-pixel linear ramp is exact anti-aliasing for
    # straight edges and very close for curved ones.
    sd = _shape_sdf(attrs.shape, xs, ys, cx, cy, half)
    cover = np.clip(0.5 - sd, 0.0, 1.0)[..., None]
    fill = np.broadcast_to(
        np.array(OBJECT_PALETTE[attrs.color], dtype=np.float32), (*cover.shape[:2], 3)
    )
    if attrs.pattern != "solid":
        assert attrs.pattern_color is not None
        pcolor = np.array(OBJECT_PALETTE[attrs.pattern_color], dtype=np.float32)
        if attrs.pattern == "striped":
            # Diagonal stripes, period measured across the stripes.
            u = (xs + ys) / np.sqrt(2.0)
            dist = np.abs((u % PATTERN_PERIOD) - PATTERN_PERIOD / 2)
            pcov = np.clip(STRIPE_WIDTH / 2 - dist + 0.5, 0.0, 1.0)
        else:
            gx = (xs % PATTERN_PERIOD) - PATTERN_PERIOD / 2
            gy = (ys % PATTERN_PERIOD) - PATTERN_PERIOD / 2
            pcov = np.clip(DOT_RADIUS - np.sqrt(gx * gx + gy * gy) + 0.5, 0.0, 1.0)
        fill = fill * (1 - pcov[..., None]) + pcolor * pcov[..., None]
    region = bg * (1 - cover) + fill * cover
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = bg
    img[y0 // f : y1 // f, x0 // f : x1 // f] = downsample(region, f)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Area (box) downsampling of a float (H, W, 3) image by an integer factor."""
    if factor == 1:
        return img
    h, w = img.shape[0] // factor, img.shape[1] // factor
    out: np.ndarray = img.reshape(h, factor, w, factor, 3).mean(axis=(1, 3))
    return out


# ----------------------------------------------------------------------------------------------
# Captions


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def caption(attrs: ShapeAttributes, rng: random.Random) -> str:
    """One caption: always names shape and colour; size, position, pattern, background mostly."""
    shape = rng.choice(SHAPE_WORDS[attrs.shape])
    color = rng.choice(COLOR_WORDS[attrs.color])
    size = rng.choice(SIZE_WORDS[attrs.size]) if rng.random() < MENTION_PROB else None
    pos = rng.choice(POSITION_PHRASES[attrs.position]) if rng.random() < MENTION_PROB else None
    bg = rng.choice(BACKGROUND_WORDS[attrs.background]) if rng.random() < MENTION_PROB else None
    pat = None
    if attrs.pattern != "solid" and rng.random() < MENTION_PROB:
        pc = rng.choice(COLOR_WORDS[attrs.pattern_color or "white"])
        if attrs.pattern == "striped":
            pat = rng.choice([f"with {pc} stripes", f"striped with {pc}"])
        else:
            pat = rng.choice([f"with {pc} dots", f"with {pc} polka dots", f"dotted with {pc}"])
    elif attrs.pattern == "solid" and rng.random() < MENTION_PROB * 0.5:
        pat = rng.choice(["in a solid color", "with no pattern", "plain"])
    noun = f"{color} {shape}"
    sized = f"{size} {noun}" if size else noun
    templates: list[Callable[[], str]] = [
        lambda: " ".join(
            p
            for p in (
                _article(sized) if pat != "plain" else _article(f"plain {sized}"),
                pat if pat and pat != "plain" else None,
                pos,
                f"on {_article(bg)} background" if bg else None,
            )
            if p
        ),
        lambda: ", ".join(
            p
            for p in (
                f"there is {_article(sized)}" + (f" {pos}" if pos else ""),
                pat if pat and pat != "plain" else None,
                f"and the background is {bg}" if bg else None,
            )
            if p
        ),
        lambda: " ".join(
            p
            for p in (
                f"{_article(bg)} background with" if bg else "an image of",
                _article(sized),
                pat if pat and pat != "plain" else None,
                pos,
            )
            if p
        ),
        lambda: " ".join(
            p
            for p in (
                f"this picture shows {_article(noun)}",
                pat if pat and pat != "plain" else None,
                f"that is {size}" if size else None,
                pos,
                f"against {_article(bg)} background" if bg else None,
            )
            if p
        ),
        lambda: " ".join(
            p
            for p in (
                f"the {shape} is {color}",
                pat if pat and pat != "plain" else None,
                f"and {size}" if size else None,
                f"and sits {pos}" if pos else None,
                f"over {_article(bg)} backdrop" if bg else None,
            )
            if p
        ),
    ]
    return rng.choice(templates)()


# ----------------------------------------------------------------------------------------------
# The whole dataset


def heldout_pairs(seed: int, num: int = 5) -> list[tuple[str, str]]:
    """The (shape, colour) pairs that never appear in training: one per shape, distinct colours,
    so every shape and every colour is still seen in training."""
    rng = random.Random(seed * 7919 + 1)
    colors = rng.sample(list(OBJECT_PALETTE), num)
    return [(SHAPES[i % len(SHAPES)], colors[i]) for i in range(num)]


def iter_dataset(num: int, seed: int) -> Iterator[tuple[str, ShapeAttributes, list[str], str]]:
    """Yield (key, attributes, captions, split) for ``num`` images, deterministic in ``seed``."""
    rng = random.Random(seed)
    held = set(heldout_pairs(seed))
    for i in range(num):
        attrs = sample_attributes(rng)
        caps = [caption(attrs, rng) for _ in range(NUM_CAPTIONS)]
        if (attrs.shape, attrs.color) in held:
            split = "test"
        else:
            split = "test" if rng.random() < TEST_FRACTION else "train"
        key = f"{class_dir(attrs.shape, attrs.color)}/shapes_{i:06d}"
        yield key, attrs, caps, split


TEST_FRACTION = 0.1  # of the non-held-out images, also in test (an in-distribution test set)


def write_dataset(
    out: str | Path,
    num: int,
    seed: int = 0,
    size: int = CANVAS,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Render ``num`` images and write them in the CUB layout under ``out``.

    The folder is built in a temporary sibling and moved into place at the end, so an
    interrupted run never leaves a half-written dataset behind.

    Layout::

        CUB_200_2011/images/<class>/<name>.png, images.txt, image_class_labels.txt
        text/<class>/<name>.txt          ten captions
        train/filenames.pickle, train/class_info.pickle (and test/)
        attributes.jsonl, meta.json      ground truth for evaluation
    """
    if num < 1:
        raise ValueError("num must be >= 1")
    if size not in (CANVAS, CANVAS // 2, CANVAS // 4, CANVAS // 8):
        raise ValueError(f"size must be one of 256, 128, 64, 32, got {size}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_into(tmp, num, seed, size, progress)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_into(root: Path, num: int, seed: int, size: int, progress: bool) -> None:
    from tqdm import tqdm

    img_root = root / "CUB_200_2011" / "images"
    splits: dict[str, list[str]] = {"train": [], "test": []}
    classes: dict[str, list[int]] = {"train": [], "test": []}
    images_txt, labels_txt = [], []
    with open(root / "attributes.jsonl", "w") as attr_f:
        it = iter_dataset(num, seed)
        for i, (key, attrs, caps, split) in enumerate(
            tqdm(it, total=num, desc="rendering shapes", disable=not progress, unit="img")
        ):
            img_path = img_root / f"{key}.png"
            img_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(attrs, size)).save(img_path, compress_level=1)
            txt_path = root / "text" / f"{key}.txt"
            txt_path.parent.mkdir(parents=True, exist_ok=True)
            txt_path.write_text("\n".join(caps) + "\n")
            cid = class_id(attrs.shape, attrs.color)
            splits[split].append(key)
            classes[split].append(cid)
            images_txt.append(f"{i + 1} {key}.png")
            labels_txt.append(f"{i + 1} {cid}")
            attr_f.write(json.dumps({"key": key, "split": split, **asdict(attrs)}) + "\n")
    (root / "CUB_200_2011" / "images.txt").write_text("\n".join(images_txt) + "\n")
    (root / "CUB_200_2011" / "image_class_labels.txt").write_text("\n".join(labels_txt) + "\n")
    for split in ("train", "test"):
        (root / split).mkdir()
        with open(root / split / "filenames.pickle", "wb") as f:
            pickle.dump(splits[split], f, protocol=2)
        with open(root / split / "class_info.pickle", "wb") as f:
            pickle.dump(classes[split], f, protocol=2)
    meta = {
        "dataset": "shapes",
        "spec_version": SPEC_VERSION,
        "num_images": num,
        "seed": seed,
        "image_size": size,
        "heldout_pairs": [list(p) for p in heldout_pairs(seed)],
        "num_train": len(splits["train"]),
        "num_test": len(splits["test"]),
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def is_shapes_root(root: str | Path) -> bool:
    """Whether ``root`` is a rendered ``shapes`` dataset (it has the ground-truth attributes)."""
    root = Path(root)
    return (root / "meta.json").is_file() and (root / "attributes.jsonl").is_file()


def load_attributes(root: str | Path) -> dict[str, ShapeAttributes]:
    """Read ``attributes.jsonl`` of a written dataset: key -> attributes."""
    out = {}
    with open(Path(root) / "attributes.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            rec.pop("split")
            key = rec.pop("key")
            out[key] = ShapeAttributes(**rec)
    return out
