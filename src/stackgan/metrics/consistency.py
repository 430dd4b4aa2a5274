"""``stackgan consistency``: text-image consistency of a sampler under its dataset's judge
(:mod:`stackgan.metrics.judges`), on the images every metric draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stackgan.data.io import DatasetError
from stackgan.metrics.generation import GEN_BATCH, generate_images
from stackgan.metrics.judges import Judge, judge_for
from stackgan.sampling import Sampler
from stackgan.utils.images import to_uint8


def require_judge(data_root: str | Path) -> Judge:
    """The judge of ``data_root``, or a :class:`DatasetError` saying there is none."""
    judge = judge_for(data_root)
    if judge is None:
        raise DatasetError(
            f"{data_root} has no consistency judge (a dataset with the truth behind its "
            "captions, such as one `stackgan data shapes` writes)"
        )
    return judge


def evaluate_sampler(
    sampler: Sampler,
    data_root: str | Path,
    split: str = "test",
    num: int = 0,
    seed: int = 0,
    batch: int = GEN_BATCH,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate one image per judged caption of ``split`` with ``sampler`` and score it (final
    resolution); the images are those every metric draws (:mod:`stackgan.metrics.generation`)."""
    judge = require_judge(data_root)
    items = judge.captions(data_root, split, num, seed)
    if not items:
        raise ValueError(f"no {split} captions the judge can check under {data_root}")
    images: list[np.ndarray] = []
    caps = [c for c, _, _ in items]
    for final in generate_images(sampler, caps, seed, batch, progress=progress, desc="consistency"):
        images.extend(to_uint8(final))
    result = judge.score(images, items)
    result.update(split=split, seed=seed, resolution=int(images[0].shape[0]))
    return result
