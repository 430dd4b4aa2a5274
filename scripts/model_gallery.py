"""Sample figures for a model's docs: each caption repeated ``--samples`` times, ``--per-row``
captions to a row, at the model's resolution, and, with ``--stage1-out``, the first stage's
images of the same samples as a second, smaller figure. The captions default to a bundled
model's example sentences (``stackgan.pretrained.PRETRAINED[model].examples``).

    python scripts/model_gallery.py --model birds --out docs/images/birds-gallery.jpg \
        --stage1-out docs/images/birds-gallery-64.png
    python scripts/model_gallery.py --model flowers --out docs/images/flowers-gallery.jpg \
        --stages-out docs/images/flowers-branches
    python scripts/model_gallery.py --model runs/flowers-cond/model-best.safetensors \
        --samples 4 --per-row 2 --out docs/images/flowers-cpu-samples.png \
        "a photo of a rose" "a photo of a sunflower"

The images are ``sampler.generate(sampler.encode_text(captions), seed)`` on
``Text2ImageSampler.from_pretrained(model)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from stackgan.pretrained import PRETRAINED
from stackgan.sampling import Text2ImageSampler
from stackgan.utils.images import make_grid, to_uint8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captions", nargs="*", help="default: the bundled model's examples")
    ap.add_argument("--model", default="birds", help="a bundled model's name or an export")
    ap.add_argument("--out", required=True, help="the final-stage figure (.png or .jpg)")
    ap.add_argument("--stage1-out", default="", help="the first stage's figure (.png)")
    ap.add_argument(
        "--stages-out",
        default="",
        help="every stage's figure (a v2 tree's branches): PREFIX-<size>.png for each",
    )
    ap.add_argument("--samples", type=int, default=3, help="samples per caption")
    ap.add_argument("--per-row", type=int, default=1, help="captions per row")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sentences = args.captions or PRETRAINED[args.model].examples
    sampler = Text2ImageSampler.from_pretrained(args.model)
    captions = [c for c in sentences for _ in range(args.samples)]
    stages = [to_uint8(s) for s in sampler.generate(sampler.encode_text(captions), seed=args.seed)]
    outs = [(stages[-1], args.out)] + ([(stages[0], args.stage1_out)] if args.stage1_out else [])
    if args.stages_out:
        outs += [(s, f"{args.stages_out}-{s[0].shape[0]}.png") for s in stages]
    for images, path in outs:
        grid = make_grid(np.stack(images), nrow=args.samples * args.per_row)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path, **({"quality": 88} if path.endswith(".jpg") else {}))
        print(f"wrote {path} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
