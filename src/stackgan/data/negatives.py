"""Mismatched text for the matching-aware discriminator, in one place.

The discriminator scores (real image, right text), (real image, wrong text) and (fake image,
right text) (StackGAN, sec. 3: "matching-aware"). Which wrong text it sees decides what it
learns to check, so every way of drawing one lives here:

- :func:`other_images`: images of another class (the reference code's choice), or just another
  image where the data has no classes; their captions are the ordinary negatives.
- :func:`hard_wrong_captions` (``loss.wrong_candidates: K``): the most text-similar of K such
  captions, so the wrong text usually differs in the object rather than the background.
- :func:`wrong_text`: the embeddings D sees for one batch, combining the above with the
  colour-swapped captions of ``loss.swap_negatives`` (the image's own caption with one colour
  word replaced; the captions themselves are written by :mod:`stackgan.text.negatives`).

All draws come from the caller's ``torch.Generator``, in a fixed order, so a resumed run draws
exactly what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

MAX_REJECTION_ROUNDS = 100  # redraws of same-class picks; converges in a step or two


class CaptionedImages(Protocol):
    """What the samplers here need of a dataset (``TextImageDataset`` has it)."""

    class_ids: torch.Tensor  # (N,) class per image

    def __len__(self) -> int: ...

    def random_captions(
        self, idx: torch.Tensor, gen: torch.Generator | None = None
    ) -> torch.Tensor: ...


def other_images(
    class_ids: torch.Tensor, idx: torch.Tensor, gen: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) image indices whose captions do not describe ``idx``: another class where labels
    exist (the matching-aware discriminator must see text that is really wrong), else another
    image. Rejection sampling from the uniform draw."""
    n = len(class_ids)
    other = torch.randint(0, n, (len(idx),), generator=gen)
    for _ in range(MAX_REJECTION_ROUNDS):
        bad = (class_ids[other] == class_ids[idx]) | (other == idx)
        if not bad.any():
            break
        other[bad] = torch.randint(0, n, (int(bad.sum()),), generator=gen)
    return other


def hard_wrong_captions(
    ds: CaptionedImages,
    idx: torch.Tensor,
    caption_idx: torch.Tensor,
    emb: torch.Tensor,
    candidates: int,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Hard mismatched captions: for each image, ``candidates`` captions of other images (as
    :func:`other_images`), keeping the one whose embedding is most cosine-similar to the image's
    own caption.

    Args:
        idx: (B,) image indices; caption_idx: (B,) their captions.
        emb: (num_captions, D) caption embeddings (any device).

    Returns:
        (B,) caption indices.
    """
    b = len(idx)
    others = other_images(ds.class_ids, idx.repeat_interleave(candidates), gen)
    cand = ds.random_captions(others, gen).view(b, candidates)  # (B, K)
    dev = emb.device
    e_right = F.normalize(emb[caption_idx.to(dev)].float(), dim=-1)  # (B, D)
    e_cand = F.normalize(emb[cand.to(dev)].float(), dim=-1)  # (B, K, D)
    best = torch.einsum("bd,bkd->bk", e_right, e_cand).argmax(dim=1).cpu()  # (B,)
    return cand[torch.arange(b), best]


def wrong_text(
    ds: CaptionedImages,
    idx: torch.Tensor,
    caption_idx: torch.Tensor,
    wrong_caption_idx: torch.Tensor,
    emb: torch.Tensor,
    gen: torch.Generator,
    *,
    wrong_candidates: int = 1,
    swap_negatives: float = 0.0,
    swap_emb: torch.Tensor | None = None,
    swap_ok: torch.Tensor | None = None,
    swap_variants: int = 1,
) -> torch.Tensor:
    """The (B, D) mismatched embeddings D sees for a batch.

    Args:
        idx, caption_idx: the batch's images and their (right) captions.
        wrong_caption_idx: ordinary negatives, captions of :func:`other_images` (drawn with the
            batch).
        emb: (num_captions, D) caption embeddings; the result is on its device.
        wrong_candidates: K > 1 replaces the ordinary negatives by :func:`hard_wrong_captions`.
        swap_negatives: the probability that a negative is the image's own caption with a
            colour swapped instead (only where the caption names a colour, ``swap_ok``).
        swap_emb: (num_captions * swap_variants, D) embeddings of the swapped captions,
            caption-major; ``swap_variants`` > 1 draws one variant per use.
    """
    wrong_idx = wrong_caption_idx
    if wrong_candidates > 1:
        wrong_idx = hard_wrong_captions(ds, idx, caption_idx, emb, wrong_candidates, gen)
    dev = emb.device
    wrong = emb[wrong_idx.to(dev)]
    if swap_emb is not None and swap_ok is not None:
        swap = torch.rand(len(idx), generator=gen) < swap_negatives
        swap &= swap_ok[caption_idx]
        pick = caption_idx * swap_variants
        if swap_variants > 1:  # (one variant draws nothing: the data stream stays as it was)
            pick = pick + torch.randint(swap_variants, (len(idx),), generator=gen)
        own = swap_emb[pick.to(dev)]
        wrong = torch.where(swap.to(dev)[:, None], own, wrong)
    return wrong
