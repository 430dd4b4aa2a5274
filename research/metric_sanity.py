"""Sanity figures for FID and the Inception Score on real data (no generator involved).

FID(real test, real train) must be far below FID(blurred test, train) and FID(noise, train); IS of
real test images under the dataset's pool3 head should approach the number of classes, and IS of
noise should be near 1. Features are cached beside the dataset, so a second run is quick.

``--floor N`` adds each split's floor: FID of N real images of the split, drawn at random,
against the split's other images (disjoint: what independent photographs of the same
distribution score). It is the floor of ``stackgan eval --split S --num-samples N``, whose
reference is the whole split (fewer than 2N images: half the split against the other half).

    python -m research.metric_sanity --data data/shapes --max-train 2000
    python -m research.metric_sanity --data ../shared/data/birds-cub50
    python -m research.metric_sanity --data ../shared/data/flowers102 --floor 2000 --floor-only
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from stackgan.metrics.features import InceptionFeatures, extract_features
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.inception_score import head_probabilities, inception_score, train_head
from stackgan.metrics.real import dataset_features, image_batches

BLUR_FACTOR = 8  # blur = area-downsample by 8 and bilinear back up


def blur(x: torch.Tensor) -> torch.Tensor:
    small = F.avg_pool2d(x, BLUR_FACTOR)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def split_floor(feats: np.ndarray, n: int, seed: int = 0) -> tuple[float, int]:
    """FID of ``n`` random rows of ``feats`` against the others (half against half when there
    are fewer than ``2 n``), and the number of rows drawn."""
    n = min(n, len(feats) // 2)
    order = np.random.default_rng(seed).permutation(len(feats))
    return fid_from_features(feats[order[n:]], feats[order[:n]]), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--size", type=int, default=256, help="resolution the images are read at")
    ap.add_argument("--max-train", type=int, default=0, help="use the first N train images")
    ap.add_argument("--max-test", type=int, default=0, help="use the first N test images")
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    ap.add_argument(
        "--floor", type=int, default=0, help="add each split's floor with this many real images"
    )
    ap.add_argument(
        "--floor-only", action="store_true", help="only the floors (no blur, noise or IS figures)"
    )
    args = ap.parse_args()

    t0 = time.time()
    net = InceptionFeatures()
    train, train_ds = dataset_features(
        args.data, "train", args.size, net, max_images=args.max_train
    )
    test, test_ds = dataset_features(args.data, "test", args.size, net, max_images=args.max_test)
    n = len(test)
    if args.floor_only:
        floors: dict[str, float | int | str] = {"data": args.data, "size": args.size}
        _add_floors(floors, train, test, args.floor or 2000)
        _report(floors, args.out, t0)
        return
    blurred = extract_features(
        net, image_batches(test_ds, args.size, transform=blur), n, desc="inception blurred"
    )
    gen = torch.Generator().manual_seed(0)
    noise_batches = (
        torch.rand(min(50, n - s), 3, args.size, args.size, generator=gen) * 2 - 1
        for s in range(0, n, 50)
    )
    noise = extract_features(net, noise_batches, n, desc="inception noise")

    res: dict[str, float | int | str] = {
        "data": args.data,
        "num_train": len(train),
        "num_test": n,
        "fid_test_vs_train": fid_from_features(train, test),
        "fid_blurred_test_vs_train": fid_from_features(train, blurred),
        "fid_noise_vs_train": fid_from_features(train, noise),
    }
    if args.floor:
        _add_floors(res, train, test, args.floor)
    labels = train_ds.class_ids.numpy()
    head = train_head(train, labels)
    res["num_classes"] = len(np.unique(labels))
    # the head's accuracy on training features, and IS of shuffled test / noise images
    res["head_train_accuracy"] = float(
        (
            head_probabilities(head, train).argmax(1) == np.unique(labels, return_inverse=True)[1]
        ).mean()
    )
    order = np.random.default_rng(0).permutation(n)  # IS splits must not follow class order
    res["is_real_test"], res["is_real_test_std"] = inception_score(
        head_probabilities(head, test[order])
    )
    res["is_noise"], _ = inception_score(head_probabilities(head, noise))
    _report(res, args.out, t0)


def _add_floors(
    res: dict[str, float | int | str], train: np.ndarray, test: np.ndarray, n: int
) -> None:
    """Each split's floor (:func:`split_floor` with ``n`` images) into ``res``."""
    for split, feats in (("train", train), ("test", test)):
        res[f"fid_floor_{split}"], res[f"floor_{split}_num"] = split_floor(feats, n)


def _report(res: dict[str, float | int | str], out: str | None, t0: float) -> None:
    """Print the figures (and the machine), and write them to ``out`` when given."""
    res["seconds"] = round(time.time() - t0, 1)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    for k, v in res.items():
        print(f"  {k:28s} {v:.3f}" if isinstance(v, float) else f"  {k:28s} {v}")
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
