"""Diversity: how different the samples of one caption are, as the mean pairwise L2 distance
between their Inception pool3 features (with Conditioning Augmentation on, and off for the
paper's CA ablation: the conditioning mean alone, so only z varies)."""

from __future__ import annotations

import torch

from stackgan.sampling import Sampler

DIVERSITY_CAPTIONS = 20  # captions sampled several times (the metric's own default count)
DIVERSITY_SAMPLES = 4  # samples per caption
DIVERSITY_SEED_OFFSET = 10_000  # its noise, apart from the one-image-per-caption metrics'


@torch.no_grad()
def diversity(
    sampler: Sampler,
    emb: torch.Tensor,
    net: torch.nn.Module,
    seed: int,
    ca_noise: bool = True,
    samples: int = DIVERSITY_SAMPLES,
) -> float:
    """Mean pairwise L2 distance in feature space between ``samples`` images of each caption.

    Args:
        emb: (N, text_dim) embeddings of the captions.
        net: the feature network, (B, 3, S, S) in [-1, 1] -> (B, D).
        ca_noise: False conditions on the CA mean alone (the ablation).
    """
    n = len(emb)
    imgs = sampler.generate(
        emb, seed=seed + DIVERSITY_SEED_OFFSET, num_images=samples, ca_noise=ca_noise
    )[-1]
    feats = net(imgs).double().reshape(n, samples, -1)
    d = torch.cdist(feats, feats)  # (n, k, k), zero diagonal
    return float(d.sum() / (n * samples * (samples - 1)))
