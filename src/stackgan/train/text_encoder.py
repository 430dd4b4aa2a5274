"""Training the text-image matcher (``stackgan text-encoder train``): the n-gram BiGRU text
encoder and its image projection, fitted with the symmetric matching loss to the Inception pool3
features of a dataset's training images (the model and loss: :mod:`stackgan.text.trainable`;
how it is judged: :mod:`stackgan.metrics.text_retrieval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.metrics.features import InceptionFeatures
from stackgan.metrics.real import dataset_features
from stackgan.metrics.text_retrieval import FEATURE_SIZE, mask_labels
from stackgan.text.trainable import SentenceEncoder, TextImageMatcher, fit_matching, save_matcher
from stackgan.utils.runtime import preserve_rng


@preserve_rng
def train_matcher(
    captions: list[list[str]],
    image_feats: np.ndarray,
    *,
    text: SentenceEncoder | None = None,
    buckets: int = 50_000,
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    labels: torch.Tensor | np.ndarray | None = None,
) -> tuple[TextImageMatcher, list[float]]:
    """Train on (image, one random caption of it) pairs; returns the matcher and epoch losses.

    ``text``: the encoder to train (default: a new ``SentenceEncoder(buckets)``, seeded).
    ``labels``: a class id per image; same-class pairs are then no negatives of each other."""
    if len(captions) != len(image_feats) or len(captions) < 2:
        raise ValueError(f"{len(captions)} caption lists for {len(image_feats)} feature rows")
    torch.manual_seed(seed)
    matcher = TextImageMatcher(text or SentenceEncoder(buckets), image_feats.shape[1])
    feats = torch.from_numpy(image_feats).float()
    classes = None if labels is None else torch.as_tensor(labels)
    if classes is not None and len(classes) != len(feats):
        raise ValueError(f"{len(classes)} labels for {len(feats)} feature rows")

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        caps = [captions[i][rng.integers(len(captions[i]))] for i in idx]
        batch_labels = None if classes is None else classes[idx]
        return matcher.loss(matcher.text(caps), feats[idx], batch_labels)

    matcher.train()
    params = [p for p in matcher.parameters() if p.requires_grad]
    losses = fit_matching(
        batch_loss,
        params,
        len(captions),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        desc="text encoder",
    )
    return matcher.eval(), losses


def train_text_encoder(
    data_root: str | Path,
    out: str | Path,
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 1e-3,
    max_train: int = 0,
    seed: int = 0,
    device: str = "cpu",
    buckets: int = 50_000,
    class_mask: bool | None = None,
) -> tuple[Any, list[float]]:
    """``stackgan text-encoder train``: fit the n-gram BiGRU encoder to the Inception pool3
    features of a dataset's training images and write it to ``out`` -> (matcher, epoch losses).
    """

    feats, ds = dataset_features(
        data_root, "train", FEATURE_SIZE, InceptionFeatures(device=device), max_images=max_train
    )
    labels = mask_labels(ds, class_mask)
    matcher, losses = train_matcher(
        ds.image_captions(),
        feats,
        buckets=buckets,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        labels=labels,
    )
    info = {
        "data": str(data_root),
        "num_images": len(ds),
        "epochs": epochs,
        "class_mask": labels is not None,
        "losses": losses,
    }
    save_matcher(out, matcher, info)
    return matcher, losses
