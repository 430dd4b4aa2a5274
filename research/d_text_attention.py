"""What does a trained matching-aware discriminator check in the text? On `shapes`, score real
training images with their own caption and with the same caption where one attribute word is
swapped for another value (object colour, or background), by object size. A D that judges the
object's colour gives the colour-swapped caption a much lower score than the right one; a D that
only matches the background does not.

    python -m research.d_text_attention runs/00002-.../checkpoint-latest.pt [more.pt ...]

Prints one JSON line per checkpoint: mean sigmoid D(real, caption) for the right caption and for
each swap, per object size (D in training mode, as it scores during training), and the R1 value
(mean squared gradient of D's score at those real pairs, ``loss.r1_gamma``'s penalty): how
steep D is around real data. ``--split test`` asks the same of held-out images, which D never
saw: scores there as high as on the training images mean D has not memorised them.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from stackgan.checkpoint import checkpoint_config, load_checkpoint
from stackgan.data import shapes
from stackgan.data.dataset import TextImageDataset
from stackgan.models.discriminator import Discriminator
from stackgan.models.registry import build_discriminators
from stackgan.text.base import TextEncoder
from stackgan.text.encoders import build_encoder
from stackgan.train.steps import r1_penalty


def swap_word(caption: str, words: list[str], choices: list[str], rng: random.Random) -> str | None:
    """``caption`` with its single occurrence of one of ``words`` replaced by a random choice;
    None when the caption has none or several (then the swap would be ambiguous)."""
    toks = caption.split()
    at = [i for i, t in enumerate(toks) if t.strip(",") in words]
    if len(at) != 1:
        return None
    toks[at[0]] = rng.choice(choices)
    return " ".join(toks)


def probe_items(
    ds: TextImageDataset, per_size: int, seed: int
) -> dict[str, list[tuple[int, str, str, str | None]]]:
    """Per size: (image, right caption, colour-swapped, background-swapped or None) for solid
    objects (a patterned object's caption names a second colour)."""
    rng = random.Random(seed)
    attrs = shapes.load_attributes(ds.root)
    # one-word background names only ("gray", "sand", ...), swapped for another one
    one_word = {b: [w for w in ws if " " not in w] for b, ws in shapes.BACKGROUND_WORDS.items()}
    out: dict[str, list[tuple[int, str, str, str | None]]] = {s: [] for s in shapes.SIZES}
    for i in rng.sample(range(len(ds)), len(ds)):
        a = attrs[ds.keys[i]]
        if a.pattern != "solid" or len(out[a.size]) >= per_size:
            continue
        start, n = int(ds.caption_offsets[i]), int(ds.caption_counts[i])
        for cap in ds.captions[start : start + n]:
            other_cols = [c for c in shapes.OBJECT_PALETTE if c != a.color]
            col = swap_word(cap, shapes.COLOR_WORDS[a.color], other_cols, rng)
            if col is None:
                continue
            others = [w for b, ws in one_word.items() if b != a.background for w in ws]
            bg = swap_word(cap, one_word[a.background], others, rng)
            out[a.size].append((i, cap, col, bg))
            break
    return out


def load_discriminator(ckpt_path: str) -> tuple[Discriminator, TextEncoder, int]:
    """A training checkpoint's last discriminator (in training mode: batch statistics, as it
    scores during training), the text encoder it was trained with, and its step."""
    ckpt = load_checkpoint(ckpt_path)
    cfg = checkpoint_config(ckpt, ckpt_path)
    d = build_discriminators(cfg)[-1]
    d.load_state_dict(ckpt["discriminators"][-1])
    d.train()
    return d, build_encoder(cfg.text.encoder), int(ckpt["step"])


def fixed_split(data_root: str, split: str, size: int) -> TextImageDataset:
    """One split at D's size, without the training crop and flip."""
    return TextImageDataset(
        data_root,
        split,
        size,
        bbox_crop=False,
        random_crop=False,
        random_flip=False,
        progress=False,
    )


@torch.no_grad()
def swap_scores(
    d: Discriminator,
    enc: TextEncoder,
    ds: TextImageDataset,
    per_size: int,
    seed: int,
    with_r1: bool = False,
) -> dict[str, dict[str, float]]:
    """Per object size: the number of images and mean sigmoid D(real, caption) for the right,
    the colour-swapped and (where the caption allows) the background-swapped caption; with
    ``with_r1``, also the R1 value at the right pairs."""
    out: dict[str, dict[str, float]] = {}
    for size, items in probe_items(ds, per_size, seed).items():
        idx = torch.tensor([it[0] for it in items])
        real = ds.images_at(idx, [d.img_size], augment=False)[0]
        code = d.encode(real)

        def score(caps: list[str], code: torch.Tensor = code) -> float:
            return float(torch.sigmoid(d.cond_logits(code, enc.encode(caps).float())).mean())

        row = {
            "n": len(items),
            "right": score([it[1] for it in items]),
            "colour_swapped": score([it[2] for it in items]),
        }
        with_bg = [k for k, it in enumerate(items) if it[3]]
        if with_bg:
            sub = code[torch.tensor(with_bg)]
            row["background_swapped"] = score([items[k][3] or "" for k in with_bg], sub)
        if with_r1:
            with torch.enable_grad():
                text = enc.encode([it[1] for it in items]).float()
                row["r1"] = float(r1_penalty(d, real, text))
        out[size] = row
    return out


def probe(
    ckpt_path: str, data_root: str, per_size: int, seed: int, split: str = "train"
) -> dict[str, object]:
    d, enc, step = load_discriminator(ckpt_path)
    ds = fixed_split(data_root, split, d.img_size)
    res: dict[str, object] = {"checkpoint": ckpt_path, "step": step, "split": split}
    r1: list[float] = []
    for size, row in swap_scores(d, enc, ds, per_size, seed, with_r1=True).items():
        r1.append(row.pop("r1"))
        res[size] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    res["r1"] = round(sum(r1) / len(r1), 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", default="data/shapes")
    ap.add_argument("--per-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train", choices=["train", "test"])
    args = ap.parse_args()
    if not Path(args.data, "attributes.jsonl").exists():
        raise SystemExit(f"{args.data} is not a shapes dataset (no attributes.jsonl)")
    for path in args.checkpoints:
        print(json.dumps(probe(path, args.data, args.per_size, args.seed, args.split)))


if __name__ == "__main__":
    main()
