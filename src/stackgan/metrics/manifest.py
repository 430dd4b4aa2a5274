"""The samples ``stackgan eval`` shows, each one reproducible with ``stackgan sample``.

The metrics generate their images in batches of captions; the float rounding of a generator
call can depend on the batch size (the CPU's math library picks its kernels by it), and a
sentence embedding by ~1e-7 on the other captions encoded with it. So the images the report
shows (its sample grid, the Stage-I | Stage-II rows, the generated column of the
nearest-neighbour figure) are made again here one caption at a time, exactly as
``stackgan sample CAPTION --seed S`` makes them: caption i of an eval seeded ``s`` is drawn
from seed ``s + i`` (:func:`stackgan.sampling.caption_seed`). They are written as
``samples/NNNN.png`` and listed, one JSON line each, in ``samples.jsonl`` beside the report:
the caption, its index, the seed to pass, the image index, the file, where the report shows
it, and the command that remakes it. See docs/sampling.md.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.sampling import Sampler, caption_seed
from stackgan.utils.cache import atomic_write
from stackgan.utils.images import resize_to, save_png, to_uint8

MANIFEST_FILE = "samples.jsonl"  # beside report.html
SAMPLES_DIR = "samples"  # the shown samples as PNGs, samples/0000.png, ...
GRID_COLUMNS = 8  # the report's sample grid


@dataclass
class ShownSamples:
    """finals: per caption, its final image (S, S, 3) uint8; stage_rows: per caption, its
    stages side by side at the final size; entries: the manifest's lines."""

    finals: list[np.ndarray] = field(default_factory=list)
    stage_rows: list[np.ndarray] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)


def stage_strip(stages: list[torch.Tensor], size: int) -> list[np.ndarray]:
    """Per sample, its stages side by side (each resized to ``size``), as one uint8 strip."""
    cols = [to_uint8(resize_to(s, size)) for s in stages]  # each (B, S, S, 3)
    return [np.concatenate([c[i] for c in cols], axis=1) for i in range(len(cols[0]))]


def sample_command(caption: str | None, seed: int, model: str | None, device: str) -> str:
    """The ``stackgan sample`` command line that makes this caption's image 0 under ``seed``."""
    parts = ["stackgan", "sample"]
    if caption is not None:
        parts.append(caption)
    parts += ["--seed", str(seed)]
    if model:
        parts += ["--model", str(model)]
    if device != "cpu":
        parts += ["--device", device]
    return shlex.join(parts)


@torch.no_grad()
def shown_samples(
    sampler: Sampler,
    captions: list[str],
    seed: int,
    num: int,
    model: str | None = None,
    device: str = "cpu",
) -> ShownSamples:
    """Make the first ``num`` captions' images one caption at a time, as ``stackgan sample``
    does (caption i from seed ``seed + i``), with their manifest lines.

    Args:
        sampler: the evaluated ``Text2ImageSampler``.
        captions: the eval's captions, in order (placeholders for an unconditional model).
        seed: the eval's seed.
        num: how many to make (the report's grid).
        model: the model as given to ``stackgan eval`` (None: the bundled one).
        device: where the sampler runs (the command repeats it).
    """
    shown = ShownSamples()
    size = sampler.resolution
    for i, caption in enumerate(captions[:num]):
        s = caption_seed(seed, i)
        text = [caption] if sampler.conditional else None
        stages = list(sampler(text, seed=s, num_images=1, output_type="pt").stage_images)
        shown.finals.append(to_uint8(stages[-1])[0])
        shown.stage_rows.append(stage_strip(stages, size)[0])
        row, col = divmod(i, GRID_COLUMNS)
        shown.entries.append(
            {
                "file": f"{SAMPLES_DIR}/{i:04d}.png",
                "caption": caption if sampler.conditional else None,
                "caption_index": i,
                "image_index": 0,
                "eval_seed": seed,
                "seed": s,
                "model": model,
                "shown_in": [f"report.html samples grid: row {row}, column {col}"],
                "command": sample_command(text[0] if text else None, s, model, device),
            }
        )
    return shown


def write_manifest(out_dir: Path, shown: ShownSamples, extra: dict[int, list[str]]) -> Path:
    """Write ``samples/NNNN.png`` and ``samples.jsonl`` under ``out_dir``; ``extra`` adds, per
    caption index, the other places that show that sample (figure files and cells)."""
    (out_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (img, entry) in enumerate(zip(shown.finals, shown.entries)):
        save_png(img, out_dir / entry["file"])
        lines.append(json.dumps({**entry, "shown_in": entry["shown_in"] + extra.get(i, [])}))
    path = out_dir / MANIFEST_FILE
    atomic_write(path, lambda tmp: tmp.write_text("".join(f"{ln}\n" for ln in lines)))
    return path
