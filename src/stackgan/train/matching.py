"""A text-image matching loss for G from a frozen image encoder (``loss.match_weight``).

Not in either StackGAN paper. AttnGAN's DAMSM loss (Xu et al., 2018) and XMC-GAN's contrastive
losses (Zhang et al., 2021) give the generator a direct signal that its image shows its text,
beside the discriminator's. Here the signal comes from a small CNN that maps an image,
area-downsampled to 64x64, into the text-embedding space. It is fitted before the GAN starts, on
the real (image, caption) pairs against the frozen text embeddings (symmetric InfoNCE over the
batch, CLIP's objective), then frozen; G is trained so that its image's embedding picks its own
caption out of the batch's. The encoder sees no generated image while it is fitted, so G
cannot train it to agree; the adversarial loss keeps G's images on the data, where the encoder
was fitted.

Why: on ``shapes`` the matching-aware D barely checks the colour of a small object (README,
"The Stage-I plateau"), and G learns only what D checks. A CNN trained only to match images
with captions does learn that colour within a few hundred steps.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.checkpoint import CheckpointError
from stackgan.models.discriminator import log2_ratio
from stackgan.models.layers import BASE_SIZE, DownBlock
from stackgan.utils.cache import atomic_write, read_safetensors

logger = logging.getLogger(__name__)

MATCH_SIZE = 64  # images are matched at this size (area-downsampled from larger ones)
TEMPERATURE = 0.1
FORMAT = "stackgan-image-matcher"


class ImageMatcher(nn.Module):
    """(B, 3, S, S) images in [-1, 1] -> (B, text_dim) unit vectors.

    Images are area-downsampled to ``size`` (64, or the image size where that is smaller),
    then stride-2 convs take them to 4x4 (no normalisation layers, so it behaves the same in
    training and, frozen, inside G's loss) and a linear map to the text space.
    """

    def __init__(self, text_dim: int, size: int = MATCH_SIZE, width: int = 32) -> None:
        super().__init__()
        self.text_dim, self.size, self.width = text_dim, size, width
        n_down = log2_ratio(size, BASE_SIZE)
        chans = [3] + [width * 2**i for i in range(n_down)]
        self.body = nn.Sequential(
            *(DownBlock(a, b, batch_norm=False) for a, b in itertools.pairwise(chans))
        )
        self.fc = nn.Linear(chans[-1] * BASE_SIZE * BASE_SIZE, text_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-1] != self.size:
            img = F.adaptive_avg_pool2d(img, self.size)
        code = self.body(img)
        return F.normalize(self.fc(code.flatten(1)).float(), dim=1)


def info_nce(
    img: torch.Tensor, text: torch.Tensor, symmetric: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of unit image vectors against the batch's text embeddings (the diagonal is the
    match). Another row with the same text (a duplicate caption) is not counted as a negative.
    Returns (loss, top-1 accuracy of image -> text)."""
    t = F.normalize(text.float(), dim=1)
    logits = img.float() @ t.T / TEMPERATURE
    same = (t @ t.T) > 0.999
    eye = torch.eye(len(t), dtype=torch.bool, device=t.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(t), device=t.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, target)) / 2
    acc = (logits.argmax(dim=1) == target).float().mean()
    return loss, acc


def fit_image_matcher(
    sample: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    text_dim: int,
    size: int,
    steps: int,
    device: torch.device,
    seed: int = 0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> ImageMatcher:
    """Fit an :class:`ImageMatcher` on real pairs; ``sample(gen)`` returns one batch of
    (images, text embeddings) at image size ``size``. Returned frozen, in eval mode."""
    with torch.random.fork_rng(devices=[]):  # the training run's random stream stays as it was
        torch.manual_seed(seed)
        matcher = ImageMatcher(text_dim, min(size, MATCH_SIZE)).to(device)
        opt = torch.optim.Adam(matcher.parameters(), lr=5e-4)
        gen = torch.Generator().manual_seed(seed)
        it: Iterable[int] = range(steps)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="image matcher", unit="it", dynamic_ncols=True)
        accs: list[float] = []
        for step in it:
            images, text = sample(gen)
            if augment is not None:
                images = augment(images)
            loss, acc = info_nce(matcher(images.to(device)), text.to(device), symmetric=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            accs.append(float(acc))
            if (step + 1) % 250 == 0 or step + 1 == steps:
                recent = sum(accs[-50:]) / len(accs[-50:])
                logger.info(
                    "image matcher step %d: loss %.3f, batch top-1 %.3f",
                    step + 1,
                    float(loss.detach()),
                    recent,
                )
        return matcher.eval().requires_grad_(False)


def save_image_matcher(path: Path, matcher: ImageMatcher) -> None:
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        **{k: str(getattr(matcher, k)) for k in ("text_dim", "size", "width")},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in matcher.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def load_image_matcher(path: Path, device: torch.device) -> ImageMatcher:

    try:
        meta, state = read_safetensors(path)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a stackgan image matcher (format {meta.get('format')})")
        matcher = ImageMatcher(
            int(meta["text_dim"]), int(meta.get("size", MATCH_SIZE)), int(meta["width"])
        )
        matcher.load_state_dict(state)
    except Exception as exc:  # truncated file, foreign file, other shapes
        raise CheckpointError(f"cannot read the image matcher {path}: {exc}") from exc
    return matcher.to(device).eval().requires_grad_(False)
