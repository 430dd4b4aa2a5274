"""The StackGAN paper's qualitative figures, as uint8 image grids (one row per caption).

(Stage-I beside Stage-II for the same captions and noise is in the report itself.)
- ``text_interpolation``: the text embedding moved linearly from one caption to another at a
  fixed z (paper, fig. 8), conditioning on the CA mean so the path is the text's alone.
- ``z_interpolation``: z moved between two draws at a fixed caption.
- ``ca_ablation``: one caption, several CA noise draws eps, with CA sampling on (eps ~ N(0, I))
  against off (eps = 0, the mean only) at the same z: what Conditioning Augmentation adds;
  row i draws the noise of caption i by the library's rule (seed + i, docs/sampling.md).
- ``nearest_neighbours``: generated images beside their nearest training images in a feature
  space (pool3 in ``stackgan eval``), the paper's check that samples are not copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from stackgan.sampling import Sampler, caption_seed, draw_noise
from stackgan.utils.images import make_grid


def _row_grid(rows: list[np.ndarray]) -> np.ndarray:
    """rows: each (K, S, S, 3) uint8 -> one grid, a row per entry."""
    k = rows[0].shape[0]
    return make_grid(np.concatenate(rows), nrow=k)


def _run(
    sampler: Sampler, z: torch.Tensor, text: torch.Tensor | None, eps: torch.Tensor | None
) -> Any:
    """The last stage's images (uint8) for these exact z's, embeddings and CA noise (drawn from
    seed 0 when ``eps`` is None)."""
    out = sampler(
        None,
        num_images=1 if text is not None else len(z),
        text_emb=text,
        latents=z,
        ca_noise=eps if eps is not None else True,
        output_type="np",
    )
    return out.images


@torch.no_grad()
def text_interpolation(
    sampler: Sampler,
    emb_a: torch.Tensor,
    emb_b: torch.Tensor,
    steps: int = 8,
    rows: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """``rows`` fixed z's (one per row); columns move the embedding from caption a to caption b."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(rows):
        z = torch.randn(1, sampler.z_dim, generator=gen).expand(steps, -1)
        w = torch.linspace(0, 1, steps)[:, None]
        text = (1 - w) * emb_a.cpu()[None] + w * emb_b.cpu()[None]  # (steps, D)
        out.append(_run(sampler, z, text, torch.zeros(steps, sampler.cond_dim)))
    return _row_grid(out)


@torch.no_grad()
def z_interpolation(
    sampler: Sampler, emb: torch.Tensor, steps: int = 8, seed: int = 0
) -> np.ndarray:
    """One row per caption: z moved linearly between two draws, the caption fixed."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for e in emb.cpu():
        z0, z1 = torch.randn(2, sampler.z_dim, generator=gen)
        w = torch.linspace(0, 1, steps)[:, None]
        rows.append(_run(sampler, (1 - w) * z0 + w * z1, e[None].expand(steps, -1), None))
    return _row_grid(rows)


@torch.no_grad()
def ca_ablation(
    sampler: Sampler, emb: torch.Tensor, samples: int = 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(CA on, CA off) grids: per caption, ``samples`` images at fixed z's, eps drawn vs eps = 0.

    With the CA mean alone, images of one caption differ only through z; drawing eps adds the
    variation the paper credits to Conditioning Augmentation.
    """
    on, off = [], []
    for i, e in enumerate(emb.cpu()):
        # row i: the noise of `stackgan sample CAPTION_i --seed seed+i --num samples`
        z, eps = draw_noise(sampler.z_dim, sampler.cond_dim, 1, caption_seed(seed, i), samples)
        text = e[None].expand(samples, -1)
        on.append(_run(sampler, z, text, eps))
        off.append(_run(sampler, z, text, torch.zeros_like(eps)))
    return _row_grid(on), _row_grid(off)


def nearest_indices(gen_feats: np.ndarray, train_feats: np.ndarray, k: int = 5) -> np.ndarray:
    """(N, k) indices of each generated image's nearest training images (L2 in feature space)."""
    g = torch.from_numpy(gen_feats).double()
    t = torch.from_numpy(train_feats).double()
    idx: np.ndarray = torch.cdist(g, t).topk(min(k, len(t)), largest=False).indices.numpy()
    return idx


def neighbour_grid(generated: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Rows of a generated image followed by its neighbours: (N, S, S, 3) and (N, k, S, S, 3)."""
    return _row_grid(
        [np.concatenate([generated[i : i + 1], neighbours[i]]) for i in range(len(generated))]
    )
