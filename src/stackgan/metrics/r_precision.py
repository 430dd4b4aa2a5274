"""R-precision and text-to-image retrieval (AttnGAN, Xu et al., CVPR 2018, sec. 5).

R-precision: for each image, its true caption is ranked by cosine similarity among itself and
99 captions of other images drawn at random (fixed seed); with R = 1 the score is the fraction of
images whose true caption ranks first. Reported as the mean and standard deviation over 10
folds, as AttnGAN. The same function serves generated images (with the image encoder of a
trained text-image model) and real ones (to evaluate a text encoder).

Retrieval: for each caption, all images of the set are ranked by cosine similarity; top-k is
the fraction whose own image is among the first k.
"""

from __future__ import annotations

import math

import numpy as np

from stackgan.metrics.base import MetricError

ATTNGAN_NEGATIVES = 99  # 1 true + 99 mismatched candidates
ATTNGAN_FOLDS = 10
TIE_TOLERANCE = 1e-9  # cosine scores this close are a tie, and a tie is not a hit


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def r_precision_hits(
    image_feats: np.ndarray,
    text_feats: np.ndarray,
    num_negatives: int = ATTNGAN_NEGATIVES,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) bool: whether each image's true caption outranks all its ``num_negatives`` drawn
    captions. The negatives depend only on N, ``groups`` and ``seed``, so two encoders scored
    on the same images with the same seed face the same draws (a paired comparison).

    Args:
        image_feats: (N, D) image embeddings.
        text_feats: (N, D) the matching caption of each image, same row order.
        num_negatives: mismatched captions per image (99).
        seed: draws the negatives.
        groups: optional (N,) ids; negatives never share the image's id (e.g. two captions of
            the same image). Default: each row is its own group.
    """
    n = len(image_feats)
    if n != len(text_feats) or n < 2:
        raise MetricError(f"need matching (N >= 2) image and text rows, got {n}/{len(text_feats)}")
    groups = np.arange(n) if groups is None else np.asarray(groups)
    img, txt = _normalise(image_feats), _normalise(text_feats)
    rng = np.random.default_rng(seed)
    hits = np.zeros(n, dtype=bool)
    for i in range(n):
        pool = np.flatnonzero(groups != groups[i])
        if len(pool) == 0:
            raise MetricError("every row is in the same group: no negatives to draw")
        neg = rng.choice(pool, size=num_negatives, replace=len(pool) < num_negatives)
        scores = txt[neg] @ img[i]
        hits[i] = float(txt[i] @ img[i]) > scores.max() + TIE_TOLERANCE
    return hits


def fold_stats(hits: np.ndarray, folds: int = ATTNGAN_FOLDS) -> tuple[float, float]:
    """Mean and std over ``folds`` consecutive folds of per-image hits (AttnGAN's report)."""
    per_fold = [float(f.mean()) for f in np.array_split(hits, min(folds, len(hits))) if len(f)]
    return float(np.mean(per_fold)), float(np.std(per_fold))


def r_precision(
    image_feats: np.ndarray,
    text_feats: np.ndarray,
    num_negatives: int = ATTNGAN_NEGATIVES,
    folds: int = ATTNGAN_FOLDS,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """Mean and std over ``folds`` of the R = 1 precision (arguments as
    :func:`r_precision_hits`)."""
    return fold_stats(r_precision_hits(image_feats, text_feats, num_negatives, seed, groups), folds)


BOOTSTRAP_CHUNK = 1 << 22  # resampled indices drawn at a time (32 MB of int64)


def paired_comparison(
    hits_a: np.ndarray, hits_b: np.ndarray, resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Is encoder A's R-precision above B's on the same images and draws?

    The fold standard deviation AttnGAN reports is the spread of ~N/10-image folds, not the
    uncertainty of the mean, and ignores that both encoders face the same images. This pairs
    them: the difference of means with a 95% bootstrap interval over images, and the exact
    two-sided McNemar p-value (a binomial test on the images exactly one of the two gets)."""
    a, b = np.asarray(hits_a, dtype=bool), np.asarray(hits_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise MetricError(f"paired hits must be two equal-length vectors, got {a.shape}/{b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CHUNK // len(diff))  # resamples per draw: bounded memory at any N
    boot = np.concatenate(
        [
            diff[rng.integers(0, len(diff), size=(min(chunk, resamples - s), len(diff)))].mean(1)
            for s in range(0, resamples, chunk)
        ]
    )
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    p = min(1.0, 2 * tail / 2**n) if n else 1.0
    return {
        "difference": float(diff.mean()),
        "ci95_low": float(np.quantile(boot, 0.025)),
        "ci95_high": float(np.quantile(boot, 0.975)),
        "only_a": only_a,
        "only_b": only_b,
        "mcnemar_p": p,
    }


def retrieval_topk(
    image_feats: np.ndarray, text_feats: np.ndarray, ks: tuple[int, ...] = (1, 5)
) -> dict[int, float]:
    """Text -> image retrieval: {k: fraction of captions whose image ranks in the top k}."""
    if len(image_feats) != len(text_feats):
        raise MetricError("retrieval needs one caption per image, in the same order")
    sims = _normalise(text_feats) @ _normalise(image_feats).T  # (N captions, N images)
    own = np.diag(sims)
    rank = (sims >= own[:, None] - TIE_TOLERANCE).sum(1) - 1  # images scoring at least as high
    return {k: float((rank < k).mean()) for k in ks}
