"""How every metric generates its images: one image per caption, chunk by chunk, each chunk's
captions encoded together and its noise seeded by ``seed + offset``. Training-time metrics,
``stackgan eval`` and ``stackgan consistency`` all draw through here, so the same captions and
seed give the same images in all three."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from tqdm import tqdm

from stackgan.sampling import Sampler

GEN_BATCH = 64  # captions per chunk: part of what fixes the images (the noise is per chunk)


def generate_images(
    sampler: Sampler,
    captions: list[str],
    seed: int = 0,
    batch: int = GEN_BATCH,
    on_batch: Callable[[list[torch.Tensor]], None] | None = None,
    progress: bool = False,
    desc: str = "generating",
) -> Iterator[torch.Tensor]:
    """Per chunk, the final-stage images (B, 3, S, S) in [-1, 1] for ``captions``;
    ``on_batch`` sees every stage of each chunk (the report's Stage-I | Stage-II rows)."""
    for s in tqdm(range(0, len(captions), batch), desc=desc, disable=not progress):
        chunk = captions[s : s + batch]
        if sampler.conditional:
            stages = sampler.generate(sampler.encode_text(chunk), seed=seed + s)
        else:  # unconditional: the captions are placeholders that count the images
            stages = sampler.generate(None, seed=seed + s, num_images=len(chunk))
        if on_batch is not None:
            on_batch(stages)
        yield stages[-1]
