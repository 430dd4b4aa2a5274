"""Fréchet Inception Distance (Heusel et al., 2017) on Inception-v3 pool3 features.

FID = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)). The trace of the matrix square root is
taken from the eigenvalues of S_1^(1/2) S_2 S_1^(1/2), a symmetric positive semi-definite matrix
with the same spectrum as S_1 S_2: no SciPy, no complex parts to discard, float64 throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackgan.metrics.base import MetricError
from stackgan.utils.cache import atomic_write

MIN_IMAGES = 2  # a covariance needs at least two samples


@dataclass
class FeatureStats:
    """Mean (D,) and covariance (D, D) of a feature set, and how many images made it."""

    mu: np.ndarray
    sigma: np.ndarray
    num: int

    @classmethod
    def of(cls, feats: np.ndarray) -> FeatureStats:
        if feats.ndim != 2 or len(feats) < MIN_IMAGES:
            raise MetricError(f"FID needs (N >= {MIN_IMAGES}, D) features, got {feats.shape}")
        f = feats.astype(np.float64)
        return cls(f.mean(0), np.cov(f, rowvar=False), len(f))

    def save(self, path: Path, meta: dict[str, object]) -> None:
        """Write atomically (a crash never leaves a half-written statistics file)."""

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
                np.savez(f, mu=self.mu, sigma=self.sigma, num=self.num, meta=json.dumps(meta))

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        with np.load(path) as z:
            return cls(z["mu"], z["sigma"], int(z["num"]))


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    root: np.ndarray = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return root


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two feature distributions."""
    if a.mu.shape != b.mu.shape:
        raise MetricError(f"feature sizes differ: {a.mu.shape} vs {b.mu.shape}")
    s1_half = _sqrt_psd(a.sigma)
    middle = s1_half @ b.sigma @ s1_half
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = a.mu - b.mu
    fid = float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_sqrt)
    return max(fid, 0.0)  # rounding can leave a tiny negative for identical sets


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(FeatureStats.of(real), FeatureStats.of(fake))
