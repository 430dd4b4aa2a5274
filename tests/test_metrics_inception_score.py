"""metrics/inception_score.py: the score and the dataset head."""

import numpy as np
import pytest

from stackgan.metrics.base import MetricError
from stackgan.metrics.inception_score import head_probabilities, inception_score, train_head


def _feats(n=500, d=16, shift=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def test_inception_score_bounds():
    uniform = np.full((100, 7), 1 / 7)
    assert inception_score(uniform) == pytest.approx((1.0, 0.0), abs=1e-9)
    confident = np.eye(5)[np.arange(100) % 5]  # every class equally often, each image certain
    mean, std = inception_score(confident)
    assert mean == pytest.approx(5.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    one_class = np.eye(5)[np.zeros(100, dtype=int)]  # certain but never diverse
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(MetricError):
        inception_score(uniform[:5])


def test_feature_head_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, size=(4, 32))
    labels = rng.permutation(np.repeat(np.arange(4) * 10, 50))  # arbitrary ids, mixed order
    feats = centres[labels // 10] + rng.normal(size=(200, 32))
    head = train_head(feats, labels, epochs=100)
    probs = head_probabilities(head, feats)
    assert probs.shape == (200, 4)
    assert (probs.argmax(1) == labels // 10).mean() > 0.95
    assert inception_score(probs)[0] > 3.5  # near the 4-class ceiling
