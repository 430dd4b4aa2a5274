"""Inception Score (Salimans et al., 2016): exp(E_x KL(p(y|x) || p(y))), over 10 splits.

The ImageNet classifier of the original IS says little about birds or shapes, so the StackGAN
authors fine-tuned Inception on CUB. The analogue here is a dataset-specific head: a linear
softmax classifier trained on frozen Inception pool3 features of the real training images, one
class per dataset class. A user-given classifier (any module mapping features or images to
logits) works the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stackgan.metrics.base import MetricError
from stackgan.metrics.fid_inception import load_fid_weights, preprocess
from stackgan.utils.runtime import preserve_rng

PAPER_SPLITS = 10  # StackGAN paper and the original IS code
CLASSIFIER_BATCH = 64  # images per call of a user's classifier


def inception_score(probs: np.ndarray, splits: int = PAPER_SPLITS) -> tuple[float, float]:
    """Mean and standard deviation over ``splits`` of exp(mean KL(p(y|x) || p(y))).

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        splits: number of equal parts (10 in the paper).
    """
    if probs.ndim != 2 or len(probs) < splits:
        raise MetricError(f"need (N >= {splits}, C) probabilities, got {probs.shape}")
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part) - np.log(py))).sum(1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


class FeatureHead(nn.Module):
    """Linear softmax classifier on pool3 features, with the feature normalisation it was
    trained with stored as buffers (so a saved head is self-contained)."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(feature_dim, num_classes)
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (N, C) logits."""
        mean, std = self.mean, self.std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        logits: torch.Tensor = self.fc((feats.float() - mean) / std)
        return logits


@preserve_rng
def train_head(
    feats: np.ndarray,
    labels: np.ndarray,
    epochs: int = 200,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> FeatureHead:
    """Fit a :class:`FeatureHead` by full-batch Adam on cross-entropy (features are few and
    small, so this takes seconds on a CPU)."""
    if len(feats) != len(labels) or len(feats) == 0:
        raise MetricError(f"{len(feats)} feature rows for {len(labels)} labels")
    classes, y = np.unique(labels, return_inverse=True)
    torch.manual_seed(seed)
    x = torch.from_numpy(feats).float()
    head = FeatureHead(x.shape[1], len(classes))
    head.mean.copy_(x.mean(0))  # type: ignore[operator]
    head.std.copy_(x.std(0).clamp_min(1e-6))  # type: ignore[operator]
    target = torch.from_numpy(y).long()
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(x), target).backward()
        opt.step()
    head.eval().requires_grad_(False)
    return head


@torch.no_grad()
def head_probabilities(head: nn.Module, feats: np.ndarray) -> np.ndarray:
    """(N, D) features -> (N, C) softmax probabilities."""
    return F.softmax(head(torch.from_numpy(feats).float()), dim=1).double().numpy()


class UserClassifier:
    """A user's image classifier for the Inception Score: a TorchScript module taking
    (N, 3, 299, 299) floats in [-1, 1] (bilinear resize, as the IS Inception) to (N, C) logits,
    or a pytorch-fid ``.pth`` (the TF Inception's own 1008 logits, the original IS network)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path, self.device = Path(path), device
        if not self.path.is_file():
            raise MetricError(f"IS classifier {self.path} does not exist")
        self.net: Any
        if self.path.suffix == ".pth":
            self.net = load_fid_weights(self.path).to(device).logits  # 299 px, [-1, 1] input
            return
        try:
            self.net = torch.jit.load(str(self.path), map_location=device).eval()
        except (RuntimeError, ValueError) as exc:
            raise MetricError(f"cannot load the IS classifier {self.path}: {exc}") from exc

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch: int = CLASSIFIER_BATCH) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, C) softmax probabilities."""

        out = []
        for s in range(0, len(images), batch):
            logits = self.net(preprocess(torch.from_numpy(images[s : s + batch]), self.device))
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                raise MetricError(f"{self.path} must return (N, C) logits")
            out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        return np.concatenate(out)
