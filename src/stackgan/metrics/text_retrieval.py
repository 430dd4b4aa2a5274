"""How well a text encoder matches captions to images: R-precision and retrieval on a test split.

Every encoder is judged the same way on the test split: one caption per image (seeded), its
embedding, and the image's embedding in the same space; R-precision (AttnGAN) and text-to-image
top-1 / top-5 retrieval. A trained encoder brings its own image projection. For an encoder with
no image side (``minilm``, or the trained architecture with random weights as a floor), a linear
projection from Inception pool3 features into its space is fitted on the training split with
the same matching loss, its text side fixed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.metrics.judges import judge_for
from stackgan.metrics.r_precision import fold_stats, r_precision_hits, retrieval_topk
from stackgan.metrics.real import dataset_features
from stackgan.text.base import is_encoder_file
from stackgan.text.encoders import build_encoder
from stackgan.text.trainable import (
    INIT_LOGIT_SCALE,
    SentenceEncoder,
    TrainedTextEncoder,
    fit_matching,
    matching_loss,
)
from stackgan.utils.runtime import preserve_rng

FEATURE_SIZE = 256  # images are read at this size for pool3 (the cache eval and FID share)
PROJECTION_EPOCHS = 150


@preserve_rng
def fit_projection(
    text_emb: list[torch.Tensor],
    image_feats: np.ndarray,
    epochs: int = PROJECTION_EPOCHS,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> torch.nn.Linear:
    """Linear pool3 -> text space, trained with the symmetric matching loss against fixed text
    embeddings (``text_emb[i]``: the (C_i, D) embeddings of image i's captions); ``labels``:
    class ids, same-class pairs no negatives (as the trained encoder is trained)."""
    torch.manual_seed(seed)
    proj = torch.nn.Linear(image_feats.shape[1], text_emb[0].shape[1])
    scale = torch.nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
    feats = torch.from_numpy(image_feats).float()

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        text = torch.stack([text_emb[i][rng.integers(len(text_emb[i]))] for i in idx])
        batch_labels = None if labels is None else labels[idx]
        return matching_loss(text, proj(feats[idx]), scale, batch_labels)

    params = [*proj.parameters(), scale]
    fit_matching(batch_loss, params, len(feats), epochs=epochs, batch_size=256, seed=seed)
    return proj.eval().requires_grad_(False)


def mask_labels(ds: Any, class_mask: bool | None = None) -> torch.Tensor | None:
    """The class id per image for same-class masking in the matching loss, or None (no mask).

    ``class_mask`` None is automatic: on when the data has classes, unless the dataset's judge
    says otherwise (``shapes``: see ``ShapesJudge.class_mask``). A CUB species or Oxford flower
    class is what its captions mostly describe, so two captions of one class fit each other's
    image and make false negatives."""

    if class_mask is None:
        judge = judge_for(ds.root)
        class_mask = judge is None or judge.class_mask
    return ds.class_ids if class_mask and ds.has_classes else None


@preserve_rng
def evaluate_text_encoder(
    data_root: str | Path,
    encoder: str,
    extractor: torch.nn.Module,
    *,
    max_train: int = 0,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    class_mask: bool | None = None,
) -> dict[str, Any]:
    """R-precision and retrieval of ``encoder`` ("minilm", "random" or a trained file) on the
    test split of ``data_root``. Untrained encoders get a linear image projection fitted on the
    training split (same-class pairs no negatives when ``class_mask`` and the data has
    classes)."""

    train_feats, train_ds = dataset_features(
        data_root, "train", FEATURE_SIZE, extractor, max_images=max_train, progress=progress
    )
    test_feats, test_ds = dataset_features(
        data_root, "test", FEATURE_SIZE, extractor, progress=progress
    )
    rng = random.Random(seed)
    test_caps = [rng.choice(c) for c in test_ds.image_captions()]

    if is_encoder_file(encoder):
        enc = TrainedTextEncoder(encoder, device=device)
        text = enc.encode(test_caps)
        images = enc.encode_images(test_feats)
    else:
        encode: Callable[[list[str]], torch.Tensor]
        if encoder == "random":  # the trained architecture, untrained: the floor
            torch.manual_seed(seed)
            net = SentenceEncoder().eval()

            def encode_random(caps: list[str]) -> torch.Tensor:
                with torch.no_grad():
                    return torch.cat([net(caps[s : s + 512]) for s in range(0, len(caps), 512)])

            encode = encode_random
        else:
            encode = build_encoder(encoder, device=device).encode
        train_caps = train_ds.image_captions()
        flat = encode([c for caps in train_caps for c in caps])
        counts = [len(c) for c in train_caps]
        labels = mask_labels(train_ds, class_mask)
        proj = fit_projection(list(flat.split(counts)), train_feats, seed=seed, labels=labels)
        text = encode(test_caps)
        with torch.no_grad():
            images = proj(torch.from_numpy(test_feats).float())
    t, v = text.double().numpy(), images.double().numpy()
    hits = r_precision_hits(v, t, seed=seed)
    r_mean, r_std = fold_stats(hits)
    top = retrieval_topk(v, t)
    return {
        "data": str(data_root),
        "encoder": encoder,
        "num_test": len(t),
        "num_train": len(train_feats),
        "r_precision": r_mean,
        "r_precision_std": r_std,
        "top1": top[1],
        "top5": top[5],
        "hits": hits,  # per test image, for paired comparisons (not JSON)
    }
