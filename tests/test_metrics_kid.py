"""metrics/kid.py: Kernel Inception Distance, and its place in the registry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from stackgan.metrics.base import MetricError
from stackgan.metrics.kid import kernel_inception_distance
from stackgan.metrics.options import MetricOptions
from stackgan.metrics.registry import calc_metric, headline, list_metrics
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

from .conftest import MeanColour, tiny_config


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of Binkowski et al. (eq. 3 of Gretton et al., 2012), pair by pair."""
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1) ** 3)

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return within / (m * (m - 1)) - 2 * cross / (m * m)


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.5, 1.0, size=(7, 5))
    # one subset of all 7 images: a permutation of each side, the same sums
    mean, std = kernel_inception_distance(y, x, num_subsets=1)
    assert mean == pytest.approx(_mmd2_unbiased(x, y), rel=1e-10) and std == 0.0


def test_kid_grows_with_the_distance_and_is_unbiased_near_zero():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 16))
    same = kernel_inception_distance(real, rng.normal(size=(300, 16)), max_subset_size=100)[0]
    near = kernel_inception_distance(real, rng.normal(0.3, 1, (300, 16)), max_subset_size=100)[0]
    far = kernel_inception_distance(real, rng.normal(1.0, 1, (300, 16)), max_subset_size=100)[0]
    assert abs(same) < 0.01 < near < far
    with pytest.raises(MetricError, match="one size"):
        kernel_inception_distance(real, real[:, :8])
    with pytest.raises(MetricError, match="at least 2"):
        kernel_inception_distance(real, real[:1])


def test_kid_through_the_registry(tiny_shapes):
    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    sampler = Text2ImageSampler(build_generator(cfg), cfg, build_encoder("minilm"))
    opts = MetricOptions(sampler, str(tiny_shapes), num_samples=5, seed=1, detector=MeanColour())
    assert "kid" in list_metrics()
    result = calc_metric("kid4", opts)
    assert result["num_samples"] == 4 and list(result["results"]) == ["kid4", "kid4_std"]
    assert headline(result) == -result["results"]["kid4"]  # lower is better
    fid_features = opts.generated[4]["features"]
    assert calc_metric("fid4", opts)["results"]["fid4"] >= 0  # the same generation and features
    assert opts.generated[4]["features"] is fid_features
