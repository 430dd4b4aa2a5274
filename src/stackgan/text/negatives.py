"""Colour-swapped captions: mismatched text that differs from the right text in one colour.

A matching-aware discriminator learns from (real image, wrong caption) pairs. When the wrong
caption is another image's, it usually differs in many ways, and D can reject it on the easiest
one (on ``shapes``: the background, which fills most of the picture) and never check the colour
of a small object. The image's own caption with one colour word replaced by a colour of another
hue differs in that attribute alone, so D must check it (``loss.swap_negatives``).

The vocabulary is generic English colour terms (CUB and Oxford-102 captions use the same words
as ``shapes``); a colour phrase of several words ("sky blue") is matched before its parts.
"""

from __future__ import annotations

import random
import re

import torch

# Colour terms by family, each with its hue. A swap never stays within a hue, so "red" ->
# "crimson" or "blue" -> "light blue" (near synonyms) are never negatives.
COLOR_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # family: (hue, replacement word, words and phrases that name it)
    "red": ("red", "red", ("red", "crimson", "scarlet", "maroon")),
    "orange": ("orange", "orange", ("orange",)),
    "yellow": ("yellow", "yellow", ("yellow", "golden", "gold")),
    "green": ("green", "green", ("green", "olive")),
    "dark green": ("green", "dark green", ("dark green", "grass green")),
    "blue": ("blue", "blue", ("blue", "navy")),
    "light blue": ("blue", "light blue", ("light blue", "sky blue")),
    "purple": ("purple", "purple", ("purple", "violet", "lilac")),
    "pink": ("pink", "pink", ("pink", "magenta")),
    "brown": ("brown", "brown", ("brown", "chestnut")),
    "beige": ("brown", "beige", ("beige", "tan", "buff", "sand")),
    "white": ("white", "white", ("white",)),
    "black": ("black", "black", ("black",)),
    "gray": ("gray", "gray", ("gray", "grey", "silver")),
}
_WORD_FAMILY = {w: fam for fam, (_, _, words) in COLOR_FAMILIES.items() for w in words}
# longest first, so "sky blue" wins over "blue"; whole words only ("tan" is not in "tangle")
_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_WORD_FAMILY, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_ARTICLE = re.compile(r"\b(a|an)(\s+)$", re.IGNORECASE)


def color_mentions(caption: str) -> list[re.Match[str]]:
    """The colour words and phrases of ``caption``, in order."""
    return list(_PATTERN.finditer(caption))


def swap_color(caption: str, rng: random.Random) -> str | None:
    """``caption`` with one colour mention (chosen at random) replaced by a colour of another
    hue, the indefinite article before it mended ("a red" -> "an orange"); None when the
    caption names no colour."""
    mentions = color_mentions(caption)
    if not mentions:
        return None
    m = rng.choice(mentions)
    hue = COLOR_FAMILIES[_WORD_FAMILY[m.group(0).lower()]][0]
    new = rng.choice([rep for h, rep, _ in COLOR_FAMILIES.values() if h != hue])
    head = caption[: m.start()]
    if art := _ARTICLE.search(head):
        article = "an" if new[0] in "aeiou" else "a"
        if art.group(1)[0].isupper():
            article = article.capitalize()
        head = head[: art.start()] + article + art.group(2)
    return head + new + caption[m.end() :]


def color_swapped_captions(
    captions: list[str], seed: int = 0, variants: int = 1
) -> tuple[list[str], torch.Tensor]:
    """``variants`` colour-swapped versions of every caption, reproducible from ``seed``.

    Each version swaps one colour mention, chosen at random, for a random colour of another
    hue, so several versions cover the caption's colours (object, background, pattern) and
    several wrong colours for each; one version per caption (the default) is always the same
    swap, and D may learn to reject that one colour rather than check the right one.

    Returns:
        (swapped, ok): ``swapped[i * variants + j]`` is version j of caption i, or caption i
        itself where it names no colour; ``ok`` (N,) bool marks the captions that were swapped.
    """
    if variants < 1:
        raise ValueError(f"variants must be at least 1, got {variants}")
    rng = random.Random(seed)
    out = [swap_color(c, rng) for c in captions for _ in range(variants)]
    ok = torch.tensor([s is not None for s in out[::variants]], dtype=torch.bool)
    kept = [s if s is not None else captions[i // variants] for i, s in enumerate(out)]
    return kept, ok


# The British spellings of the first release, kept as aliases: the public API spells "color",
# as the papers ("color-consistency") and the config keys (loss.color_weight) do.
COLOUR_FAMILIES = COLOR_FAMILIES
colour_mentions = color_mentions
swap_colour = swap_color
colour_swapped_captions = color_swapped_captions
