"""metrics/fid.py: Frechet distance, feature statistics."""

import numpy as np
import pytest

from stackgan.metrics.base import MetricError
from stackgan.metrics.fid import FeatureStats, fid_from_features, frechet_distance


def _feats(n=500, d=16, shift=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = _feats()
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    fids = [fid_from_features(a, a + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[0] > 0
    # a pure shift adds exactly |shift|^2 per dimension
    assert fids[2] == pytest.approx(16 * 1.0**2, rel=1e-6)


def test_fid_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    a, b = FeatureStats(mu1, np.diag(v1), 10), FeatureStats(mu2, np.diag(v2), 10)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fid_errors_and_stats_round_trip(tmp_path):
    with pytest.raises(MetricError, match="N >= 2"):
        FeatureStats.of(np.zeros((1, 4)))
    with pytest.raises(MetricError, match="sizes differ"):
        fid_from_features(_feats(d=4), _feats(d=5))
    s = FeatureStats.of(_feats())
    s.save(tmp_path / "s.npz", {"dataset": "x"})
    t = FeatureStats.load(tmp_path / "s.npz")
    assert t.num == 500 and np.array_equal(s.mu, t.mu) and np.array_equal(s.sigma, t.sigma)


def test_split_floor_is_small_and_grows_as_the_sample_shrinks():
    from research.metric_sanity import split_floor

    rng = np.random.default_rng(0)
    same = rng.normal(size=(600, 8))
    fid, n = split_floor(same, 200)
    assert n == 200 and fid < 0.5
    assert split_floor(same, 1000)[1] == 300  # fewer than 2N: half against half
    assert split_floor(same, 20)[0] > fid  # FID's small-sample bias: the floor rises
