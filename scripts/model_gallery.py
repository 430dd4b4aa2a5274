"""A bundled model's example sentences as one figure for its model card: a row per sentence,
``--samples`` images each at the model's resolution, and, for a two-stage model, the Stage-I
images of the same samples as a second, smaller figure.

    python scripts/model_gallery.py --model birds --out docs/images/birds-gallery.jpg \
        --stage1-out docs/images/birds-gallery-64.png

The images are ``Text2ImageSampler.from_pretrained(model)`` on the sentences of
``stackgan.pretrained.PRETRAINED[model].examples``, each sentence repeated ``--samples`` times in
a row, ``sampler.generate(sampler.encode_text(captions), seed)``.
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
    ap.add_argument("--model", default="birds", choices=sorted(PRETRAINED))
    ap.add_argument("--out", required=True, help="the final-stage figure (.png or .jpg)")
    ap.add_argument("--stage1-out", default="", help="the first stage's figure (.png)")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sentences = PRETRAINED[args.model].examples
    sampler = Text2ImageSampler.from_pretrained(args.model)
    captions = [c for c in sentences for _ in range(args.samples)]
    stages = [to_uint8(s) for s in sampler.generate(sampler.encode_text(captions), seed=args.seed)]
    outs = [(stages[-1], args.out)] + ([(stages[0], args.stage1_out)] if args.stage1_out else [])
    for images, path in outs:
        grid = make_grid(np.stack(images), nrow=args.samples)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path, **({"quality": 88} if path.endswith(".jpg") else {}))
        print(f"wrote {path} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
