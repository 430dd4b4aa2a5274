"""What do the hard mismatched captions (``loss.wrong_candidates: K``) differ in? On `shapes`,
draw the wrong caption for random training images as the training loop does (the most
text-similar of K captions of other classes) and count, against each image's attributes, how
often it shares the background and names another object colour: the only negatives that make D
check the object's colour, as the rest it can reject by the background (or they differ in
shape only).

    python -m research.hard_negatives --encoder shapes-text-b4k.safetensors --k 1 16 64

Prints one JSON line per K: the share of negatives with the same background and another colour,
the same background and the same colour, another background, and the same background and
another colour on a small object.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from stackgan.data import shapes
from stackgan.data.dataset import TextImageDataset
from stackgan.text.encoders import build_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/shapes")
    ap.add_argument("--encoder", required=True, help="text encoder (a file, or minilm)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(args.data, "attributes.jsonl").exists():
        raise SystemExit(f"{args.data} is not a shapes dataset (no attributes.jsonl)")
    ds = TextImageDataset(
        args.data, "train", 64, bbox_crop=False, random_crop=False, random_flip=False
    )
    emb = build_encoder(args.encoder).encode(ds.captions).float()
    attrs = shapes.load_attributes(ds.root)
    image_of = torch.repeat_interleave(torch.arange(len(ds)), ds.caption_counts)
    for k in args.k:
        gen = torch.Generator().manual_seed(args.seed)
        counts: Counter[str] = Counter()
        n = 0
        for _ in range(args.batches):
            idx = torch.randint(0, len(ds), (64,), generator=gen)
            wrong = ds.hard_wrong_captions(idx, ds.random_captions(idx, gen), emb, k, gen)
            for i, w in zip(idx.tolist(), wrong.tolist()):
                a, b = attrs[ds.keys[i]], attrs[ds.keys[int(image_of[w])]]
                same_bg, other_col = a.background == b.background, a.color != b.color
                counts["same_bg_other_colour"] += same_bg and other_col
                counts["same_bg_same_colour"] += same_bg and not other_col
                counts["other_bg"] += not same_bg
                counts["small_same_bg_other_colour"] += a.size == "small" and same_bg and other_col
                n += 1
        print(json.dumps({"k": k, **{key: round(v / n, 3) for key, v in counts.items()}}))


if __name__ == "__main__":
    main()
