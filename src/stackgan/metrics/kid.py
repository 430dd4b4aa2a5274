"""Kernel Inception Distance (Binkowski et al., ICLR 2018, "Demystifying MMD GANs").

The squared Maximum Mean Discrepancy between generated and real Inception pool3 features (the
features FID uses) under the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3, estimated
without bias and averaged over random subsets, as StyleGAN2-ADA's
``metrics/kernel_inception_distance.py`` does: 100 subsets of at most 1,000 images of each
side. Unlike FID, the estimate has no bias that depends on the number of images, so small
evaluations can be compared with large ones; it can come out slightly negative.
"""

from __future__ import annotations

import numpy as np

from stackgan.metrics.base import MetricError

KID_SUBSETS = 100  # StyleGAN2-ADA's num_subsets
KID_SUBSET_SIZE = 1000  # StyleGAN2-ADA's max_subset_size


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = KID_SUBSETS,
    max_subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation over subsets of the unbiased MMD^2 estimate.

    Args:
        real: (N, D) features of real images.
        fake: (M, D) features of generated images.
        num_subsets: subsets drawn (each side without replacement, seeded by ``seed``).
        max_subset_size: images per side in a subset (fewer when a side has fewer).
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise MetricError(f"KID needs (N, D) features of one size, got {real.shape}/{fake.shape}")
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise MetricError(f"KID needs at least 2 images a side, got {len(real)}/{len(fake)}")
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)].astype(np.float64)
        y = real[rng.choice(len(real), m, replace=False)].astype(np.float64)
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3  # k(x, x') + k(y, y')
        b = (x @ y.T / d + 1) ** 3  # k(x, y)
        # off-diagonal means of the within-set kernels minus twice the cross mean
        estimates.append(((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m)
    return float(np.mean(estimates)), float(np.std(estimates))
