"""Does the image matcher of ``loss.match_weight`` read what D misses? Fit it on the `shapes`
training pairs as a training run does (stackgan.train.matching), then, on held-out test images
of solid objects, count how often the right caption scores above the same caption with the
object's colour swapped, by object size (the question research/d_text_attention.py asks of a
trained D).

    python -m research.image_matcher_probe --data data/shapes \
        --encoder runs/text/shapes-text-b4k.safetensors --steps 300

Prints one JSON line: fitting time and, per size, the number of images, the fraction ranked
right and the mean cosine similarity to the right and to the colour-swapped caption.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from research.d_text_attention import fixed_split, probe_items
from stackgan.augment import make_augment
from stackgan.data.dataset import TextImageDataset
from stackgan.text.encoders import build_encoder, dataset_embeddings
from stackgan.train.matching import fit_image_matcher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a shapes dataset folder")
    ap.add_argument("--encoder", required=True, help="text.encoder of the GAN (name or file)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--per-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    enc = build_encoder(args.encoder)
    ds = TextImageDataset(
        args.data, "train", args.size, random_crop=False, random_flip=False, progress=False
    )
    emb = dataset_embeddings(ds.captions, args.encoder, ds.cache_dir, progress=False, encoder=enc)

    def sample(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(ds), (64,), generator=gen)
        return ds.images_at(idx, [args.size], gen)[0], emb[ds.random_captions(idx, gen)]

    start = time.time()
    matcher = fit_image_matcher(
        sample,
        emb.shape[1],
        args.size,
        args.steps,
        torch.device("cpu"),
        seed=args.seed,
        augment=make_augment("translation"),
    )
    res: dict[str, object] = {"steps": args.steps, "fit_seconds": round(time.time() - start, 1)}
    test = fixed_split(args.data, "test", args.size)
    for size, items in probe_items(test, args.per_size, args.seed).items():
        idx = torch.tensor([it[0] for it in items])
        with torch.no_grad():
            f = matcher(test.images_at(idx, [args.size], augment=False)[0])
            right = (f * F.normalize(enc.encode([it[1] for it in items]).float(), dim=1)).sum(1)
            swap = (f * F.normalize(enc.encode([it[2] for it in items]).float(), dim=1)).sum(1)
        res[size] = {
            "n": len(items),
            "right_above_colour_swapped": round(float((right > swap).float().mean()), 3),
            "cos_right": round(float(right.mean()), 3),
            "cos_colour_swapped": round(float(swap.mean()), 3),
        }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
