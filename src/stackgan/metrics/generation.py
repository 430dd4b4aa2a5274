"""How every metric generates its images: one image per caption, chunk by chunk, each chunk's
captions encoded together, the noise of caption i by the library's one rule
(:func:`stackgan.sampling.noise_stream`: caption i of a run seeded ``seed`` draws from
``seed + i``, whatever the chunk). Training-time metrics, ``stackgan eval`` and
``stackgan consistency`` all draw through here, so the same captions and seed give the same
images in all three, and caption i's image is that of ``stackgan sample CAPTION --seed seed+i``
(up to the float rounding of other batch sizes; ``stackgan eval`` remakes the images it shows
one caption at a time, see :mod:`stackgan.metrics.manifest`)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm import tqdm

from stackgan.sampling import Sampler, draw_noise

GEN_BATCH = 64  # captions per chunk (memory); the noise does not depend on it


def generate_images(
    sampler: Sampler,
    captions: list[str],
    seed: int = 0,
    batch: int = GEN_BATCH,
    progress: bool = False,
    desc: str = "generating",
) -> Iterator[torch.Tensor]:
    """Per chunk, the final-stage images (B, 3, S, S) in [-1, 1] for ``captions``."""
    for s in tqdm(range(0, len(captions), batch), desc=desc, disable=not progress):
        chunk = captions[s : s + batch]
        if sampler.conditional:  # caption s + j of the list draws from seed + s + j
            stages = sampler.generate(sampler.encode_text(chunk), seed=seed + s)
        else:  # unconditional: each placeholder caption j is one image, from seed + j
            dims = sampler.z_dim, sampler.cond_dim
            z = torch.cat([draw_noise(*dims, 1, seed + s + j)[0] for j in range(len(chunk))])
            out = sampler(None, num_images=len(chunk), latents=z, output_type="pt")
            stages = list(out.stage_images)
        yield stages[-1]
