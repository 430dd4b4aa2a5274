"""Samples of a text-conditioned flowers model for its docs: four classes seen in training and
four of the test split's unseen classes, four samples each, one row of two classes at a time.

    python scripts/flowers_samples.py runs/flowers-cond/model-best.safetensors \\
        docs/images/flowers-cpu-samples.png
"""

import sys

import numpy as np
from PIL import Image

from stackgan.sampling import Text2ImageSampler
from stackgan.utils.images import make_grid, to_uint8

SEEN = [
    "a photo of a rose",
    "a photo of a passion flower",
    "a photo of an english marigold",
    "a photo of a pink primrose",
]
UNSEEN = [  # test classes of flowers102: not in the training split
    "a photo of a sunflower",
    "a photo of a common dandelion",
    "a photo of a californian poppy",
    "a photo of a tiger lily",
]


def main() -> None:
    sampler = Text2ImageSampler.from_pretrained(sys.argv[1])
    captions = [c for c in SEEN + UNSEEN for _ in range(4)]
    images = to_uint8(sampler.generate(sampler.encode_text(captions), seed=0)[-1])
    Image.fromarray(make_grid(np.stack(images), nrow=8)).save(sys.argv[2])
    print("wrote", sys.argv[2])


if __name__ == "__main__":
    main()
