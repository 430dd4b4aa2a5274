"""metrics/r_precision.py: R-precision, retrieval and paired comparison."""

import numpy as np
import pytest

from stackgan.metrics.base import MetricError


def test_r_precision_with_a_toy_encoder_of_known_answers():
    from stackgan.metrics.r_precision import r_precision, retrieval_topk

    rng = np.random.default_rng(0)
    img = rng.normal(size=(300, 32))
    # a perfect encoder: each caption embeds exactly as its image -> R-precision 1, top-1 1
    assert r_precision(img, img)[0] == 1.0
    assert retrieval_topk(img, img) == {1: 1.0, 5: 1.0}
    # an encoder that ignores the text: every candidate ties -> the true one never ranks first
    const = np.ones((300, 32))
    assert r_precision(img, const)[0] == 0.0
    # a random encoder: about 1 in 100 by chance
    rand = rng.normal(size=(300, 32))
    assert r_precision(img, rand, seed=1)[0] < 0.05
    # half the captions right, half shuffled: R-precision about one half
    half = img.copy()
    half[150:] = rng.permutation(img[150:])
    assert 0.45 <= r_precision(img, half)[0] <= 0.56
    top = retrieval_topk(img, half)
    assert 0.49 <= top[1] <= 0.55 and top[5] >= top[1]


def test_paired_comparison_of_two_encoders_hits():
    from stackgan.metrics.r_precision import fold_stats, paired_comparison

    a = np.zeros(100, dtype=bool)
    a[:30] = True
    b = a.copy()
    b[:10] = False  # A alone gets 10 images, B alone none
    cmp = paired_comparison(a, b)
    assert cmp["difference"] == pytest.approx(0.1)
    assert (cmp["only_a"], cmp["only_b"]) == (10, 0)
    assert cmp["mcnemar_p"] == pytest.approx(2 / 2**10)  # exact binomial, two-sided
    assert 0.03 <= cmp["ci95_low"] < 0.1 < cmp["ci95_high"] <= 0.17
    same = paired_comparison(a, a)
    assert same["difference"] == 0 and same["mcnemar_p"] == 1.0
    b2 = a.copy()
    b2[:5], b2[50:55] = False, True  # 5 each way: no evidence either way
    assert paired_comparison(a, b2)["mcnemar_p"] == 1.0
    assert fold_stats(a, folds=10) == (pytest.approx(0.3), pytest.approx(0.4582576))
    with pytest.raises(MetricError, match="equal-length"):
        paired_comparison(a, b[:50])


def test_paired_comparison_bootstrap_in_chunks_is_the_same_draw(monkeypatch):
    from stackgan.metrics import r_precision

    rng = np.random.default_rng(1)
    a, b = rng.random(300) < 0.3, rng.random(300) < 0.2
    whole = r_precision.paired_comparison(a, b, resamples=1000)
    monkeypatch.setattr(r_precision, "BOOTSTRAP_CHUNK", 300 * 7)  # 7 resamples a draw, 143 draws
    assert r_precision.paired_comparison(a, b, resamples=1000) == whole


def test_r_precision_groups_keep_an_images_own_captions_out_of_the_negatives():
    from stackgan.metrics.r_precision import r_precision

    img = np.repeat(np.eye(3), 2, axis=0)  # 3 images, each with 2 caption rows
    assert r_precision(img, img, num_negatives=3, groups=np.repeat(np.arange(3), 2))[0] == 1.0
    with pytest.raises(MetricError, match="same group"):
        r_precision(img, img, groups=np.zeros(6))
