"""What a StackGAN v1 Stage-II has to beat, and how far it could go, at 256 px.

1. The ceiling of super-resolution from 64 px: FID of the real test photos taken down to
   64 px (area) and back up to 256 px (bilinear) against the real 256 px photos. A Stage-II
   that only upsampled perfect 64 px images would score this; real detail added on top can
   only lower it, toward 0.
2. ``--bilinear-export OUT``: a v1 Stage-II export whose Stage-II is the identity on the
   upsampled Stage-I image (a fresh ``model.stage2_skip`` Stage-II: its correction starts at
   zero), for ``stackgan eval``: what a Stage-II must beat to be worth its cost.

    python scripts/sr_ceiling.py --data ../shared/data/birds-cub50 --out eval/sr-ceiling.json
    python scripts/sr_ceiling.py --data ../shared/data/birds-cub50 --out eval/sr-ceiling.json \
        --bilinear-export eval/birds-bilinear.safetensors --stage1 birds \
        --config configs/v1_birds_stage2_cpu.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from stackgan.metrics.features import extract_features, feature_network
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.real import dataset_features, image_batches


def ceiling(data: str, low: int, size: int, split: str) -> dict[str, float]:
    net = feature_network(None, "cpu")
    real, ds = dataset_features(data, split, size, net)

    def down_up(x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=(low, low), mode="area")
        return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)

    with torch.no_grad():
        up = extract_features(
            net, image_batches(ds, size, transform=down_up), len(ds), True, f"{low}->{size}px"
        )
    return {
        "split": split,
        "num_real": len(real),
        "low": low,
        "size": size,
        f"fid_real_{low}_bilinear_vs_real_{size}": fid_from_features(real, up),
    }


def bilinear_export(config: str, stage1: str, out: Path) -> None:
    from stackgan.checkpoint import export_generator
    from stackgan.config import load_config
    from stackgan.models.registry import build_generator
    from stackgan.train.setup import _load_stage1

    cfg = load_config(config, [f"model.stage1_checkpoint={stage1}", "model.stage2_skip=true"])
    g = build_generator(cfg)
    _load_stage1(cfg, g)
    export_generator(out, g.state_dict(), cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="JSON file of the figures")
    ap.add_argument("--split", default="test")
    ap.add_argument("--low", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--bilinear-export", default="")
    ap.add_argument("--stage1", default="birds")
    ap.add_argument("--config", default="configs/v1_birds_stage2_cpu.yaml")
    args = ap.parse_args()
    if args.bilinear_export:
        bilinear_export(args.config, args.stage1, Path(args.bilinear_export))
        print(f"wrote {args.bilinear_export}")
    res = ceiling(args.data, args.low, args.size, args.split)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
