"""Can a trained Stage-I discriminator learn to check the object's colour, if shown the right
negatives? Fine-tunes D alone (G is not involved) on real `shapes` training images paired with
their caption (target 1) and with the same caption with the colour word swapped (target 0), and
prints, every ``--eval-every`` steps, the mean sigmoid D(real, caption) on held-out test images
for the right and the colour-swapped caption, per object size. If D soon rejects the swapped
captions on small objects too, its architecture can see their colour and what it lacked in
training were such negatives.

    python -m research.d_colour_capacity runs/00018-.../checkpoint-latest.pt --steps 400

Nothing is written: the checkpoint is read, never saved.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from research.d_text_attention import fixed_split, load_discriminator, swap_scores, swap_word
from stackgan.data import shapes
from stackgan.data.dataset import TextImageDataset
from stackgan.models.discriminator import Discriminator
from stackgan.text.base import TextEncoder


def colour_swapped_pairs(ds: TextImageDataset, rng: random.Random) -> list[tuple[int, str, str]]:
    """(image, caption, the caption with its object-colour word swapped for another colour that
    is neither the object's nor its pattern's), one per training image where a caption allows."""
    attrs = shapes.load_attributes(ds.root)
    pairs = []
    for i in range(len(ds)):
        a = attrs[ds.keys[i]]
        others = [c for c in shapes.OBJECT_PALETTE if c not in (a.color, a.pattern_color)]
        start, n = int(ds.caption_offsets[i]), int(ds.caption_counts[i])
        for cap in ds.captions[start : start + n]:
            swapped = swap_word(cap, shapes.COLOR_WORDS[a.color], others, rng)
            if swapped:
                pairs.append((i, cap, swapped))
                break
    return pairs


def held_out_scores(
    d: Discriminator, enc: TextEncoder, ds: TextImageDataset
) -> dict[str, dict[str, float]]:
    """Per size, mean sigmoid D(real, caption) for the right and the colour-swapped caption."""
    return {
        size: {"right": round(row["right"], 3), "swapped": round(row["colour_swapped"], 3)}
        for size, row in swap_scores(d, enc, ds, 128, 0).items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="data/shapes")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(args.data, "attributes.jsonl").exists():
        raise SystemExit(f"{args.data} is not a shapes dataset (no attributes.jsonl)")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    d, enc, _ = load_discriminator(args.checkpoint)
    train, test = (fixed_split(args.data, split, d.img_size) for split in ("train", "test"))
    pairs = colour_swapped_pairs(train, rng)
    print(json.dumps({"step": 0, "held_out": held_out_scores(d, enc, test)}))
    opt = torch.optim.Adam(d.parameters(), lr=args.lr, betas=(0.5, 0.999))
    for step in range(1, args.steps + 1):
        batch = rng.sample(pairs, 64)
        idx = torch.tensor([p[0] for p in batch])
        code = d.encode(train.images_at(idx, [d.img_size], augment=False)[0])
        right = d.cond_logits(code, enc.encode([p[1] for p in batch]).float())
        swapped = d.cond_logits(code, enc.encode([p[2] for p in batch]).float())
        loss = F.binary_cross_entropy_with_logits(right, torch.ones_like(right))
        loss = loss + F.binary_cross_entropy_with_logits(swapped, torch.zeros_like(swapped))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.eval_every == 0:
            rec = {"step": step, "loss": round(float(loss.detach()), 4)}
            print(json.dumps({**rec, "held_out": held_out_scores(d, enc, test)}), flush=True)


if __name__ == "__main__":
    main()
