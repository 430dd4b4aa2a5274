"""Per-attribute text-image consistency on `shapes`, by a classifier trained on real images.

The palette judge (``metrics/consistency.py``) answers two questions exactly from pixels: the
object's colour and the background. Shape, size, position and pattern need a learned judge: a
small CNN with one softmax head per attribute (colour, background, shape, size, position,
pattern), trained on the real training renders at 128 px (where stripes and dots are still
visible) and scored on the real test renders for scale. A generated image is right on an
attribute when the classifier reads the value the caption's image has.

The trained classifier is cached beside the dataset (keyed by its image list), so it is trained
once per dataset; it takes about a minute on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stackgan.data import shapes
from stackgan.data.dataset import TextImageDataset
from stackgan.data.io import default_cache_dir
from stackgan.metrics.base import MetricError
from stackgan.utils.cache import atomic_torch_save
from stackgan.utils.runtime import preserve_rng

logger = logging.getLogger(__name__)

CLASSIFIER_SIZE = 128  # stripes (4 px period) and dots still resolve; 256 would cost 4x
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": tuple(shapes.OBJECT_PALETTE),
    "background": tuple(shapes.BACKGROUND_PALETTE),
    "shape": shapes.SHAPES,
    "size": tuple(shapes.SIZES),
    "position": tuple(shapes.POSITIONS),
    "pattern": shapes.PATTERNS,
}
CACHE_VERSION = 1


class AttributeClassifier(nn.Module):
    """(B, 3, 128, 128) images in [-1, 1] -> one logit vector per attribute.

    Five stride-2 3x3 conv + BN + ReLU layers to 4x4 (no global pooling: position must
    survive), then a shared fc and one linear head per attribute.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(chans[-1] * 16, 256), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(256, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[-2:] != (CLASSIFIER_SIZE, CLASSIFIER_SIZE):
            x = F.interpolate(
                x,
                size=CLASSIFIER_SIZE,
                mode="area" if x.shape[-1] > CLASSIFIER_SIZE else "bilinear",
            )
        h = self.fc(self.trunk(x))
        return {k: head(h) for k, head in self.heads.items()}


def labels_of(attrs: list[shapes.ShapeAttributes]) -> dict[str, torch.Tensor]:
    """Attribute values -> class indices, one (N,) tensor per attribute."""
    return {
        k: torch.tensor([values.index(getattr(a, k)) for a in attrs])
        for k, values in ATTRIBUTES.items()
    }


@torch.no_grad()
def predict(
    net: AttributeClassifier, images: torch.Tensor, batch: int = 128
) -> dict[str, np.ndarray]:
    """(N, 3, S, S) in [-1, 1] or (N, S, S, 3) uint8 -> predicted value names per attribute."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    net.eval()
    idx: dict[str, list[torch.Tensor]] = {k: [] for k in ATTRIBUTES}
    for s in range(0, len(images), batch):
        for k, logits in net(images[s : s + batch].float()).items():
            idx[k].append(logits.argmax(1))
    return {k: np.array(ATTRIBUTES[k])[torch.cat(v).numpy()] for k, v in idx.items()}


def accuracy(
    pred: dict[str, np.ndarray], attrs: list[shapes.ShapeAttributes], mask: np.ndarray | None = None
) -> dict[str, float]:
    """Fraction right per attribute (over ``mask`` when given)."""
    out = {}
    for k in ATTRIBUTES:
        right = pred[k] == np.array([getattr(a, k) for a in attrs])
        if mask is not None:
            right = right[mask]
        out[k] = float(right.mean()) if len(right) else float("nan")
    return out


def _split_images(root: Path, split: str) -> tuple[torch.Tensor, list[shapes.ShapeAttributes]]:

    ds = TextImageDataset(
        root,
        split,
        CLASSIFIER_SIZE,
        bbox_crop=False,
        random_crop=False,
        random_flip=False,
        progress=False,
    )
    table = shapes.load_attributes(root)
    return ds.images_at(torch.arange(len(ds)), [CLASSIFIER_SIZE], augment=False)[0], [
        table[k] for k in ds.keys
    ]


@preserve_rng
def train_classifier(
    images: torch.Tensor,
    attrs: list[shapes.ShapeAttributes],
    epochs: int = 8,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> AttributeClassifier:
    """Fit an :class:`AttributeClassifier` (sum of the per-attribute cross-entropies)."""
    from tqdm import tqdm

    if len(images) < 2:
        raise MetricError("need at least two real images to train the attribute classifier")
    torch.manual_seed(seed)
    net = AttributeClassifier()
    y = labels_of(attrs)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, lr, total_steps=epochs * -(-len(images) // batch)
    )
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in tqdm(range(epochs), desc="attribute classifier", disable=not progress):
        for idx in torch.randperm(len(images), generator=gen).split(batch):
            if len(idx) < 2:
                continue
            logits = net(images[idx])
            loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in ATTRIBUTES)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            sched.step()
    return net.eval().requires_grad_(False)


def dataset_classifier(
    root: str | Path, progress: bool = True
) -> tuple[AttributeClassifier, dict[str, float]]:
    """The attribute classifier of a `shapes` dataset folder, trained on its training split once
    and cached beside it, with its accuracy on the real test split."""

    root = Path(root)
    if not (root / "attributes.jsonl").exists():
        raise MetricError(f"{root} has no attributes.jsonl: attribute consistency is for shapes")
    keys = (root / "attributes.jsonl").read_bytes()
    sig = hashlib.sha1(repr((CACHE_VERSION, CLASSIFIER_SIZE)).encode() + keys).hexdigest()[:12]
    path = default_cache_dir(root) / f"attribute-classifier-{sig}.pt"
    net = AttributeClassifier()
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(saved["state"])
            return net.eval().requires_grad_(False), dict(saved["real_test"])
        except (RuntimeError, KeyError, OSError, EOFError) as exc:
            logger.warning("attribute classifier cache %s unreadable (%s); retraining", path, exc)
    images, attrs = _split_images(root, "train")
    net = train_classifier(images, attrs, progress=progress)
    test_images, test_attrs = _split_images(root, "test")
    real_test = accuracy(predict(net, test_images), test_attrs)
    atomic_torch_save({"state": net.state_dict(), "real_test": real_test}, path)
    return net, real_test


def attribute_consistency(
    images: list[np.ndarray] | torch.Tensor,
    attrs: list[shapes.ShapeAttributes],
    compositional: list[bool],
    root: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-attribute accuracy of generated images (uint8 HWC arrays or a float batch) against the
    attributes of the images their captions describe, overall and on the compositional
    captions, with the classifier's accuracy on real test images beside it."""
    net, real_test = dataset_classifier(root, progress)
    x = torch.from_numpy(np.stack(images)) if isinstance(images, list) else images
    pred = predict(net, x)
    comp = np.array(compositional, dtype=bool)
    return {
        "generated": accuracy(pred, attrs),
        "generated_compositional": accuracy(pred, attrs, comp) if comp.any() else {},
        "real_test": real_test,
    }
