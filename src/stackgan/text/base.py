"""What every text encoder shares: the ``TextEncoder`` protocol, caption validation and the
error type (used by ``encoders`` and ``trainable`` alike)."""

from __future__ import annotations

import unicodedata
from typing import Protocol, runtime_checkable

import torch

from stackgan.errors import StackGANError

MAX_CAPTION_CHARS = 1000  # far beyond any dataset caption; longer input is almost surely a mistake


class TextEncoderError(StackGANError, ValueError):
    """Bad caption input or an encoder that cannot be used."""


class CaptionError(TextEncoderError):
    """A caption the rules refuse; ``index`` says which (the server names it as a field)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


# Characters that show nothing: Unicode format characters (zero-width spaces and joiners, the
# byte-order mark, bidi marks), other controls, separators and unassigned or private code points.
# A caption made only of these is as empty as "" to a reader, whatever the tokenizer makes of it.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})


def _refused_char(caption: str) -> str | None:
    """The first character no caption may hold: a C0/C1 control other than tab and newlines
    (NUL included), or a lone surrogate, which JSON can carry but UTF-8 cannot encode."""
    for ch in caption:
        o = ord(ch)
        if (o < 0x20 and ch not in "\t\n\r") or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF:
            return ch
    return None


def _strip(caption: str) -> str:
    """``caption`` without leading and trailing whitespace or invisible characters."""
    i, j = 0, len(caption)
    while i < j and unicodedata.category(caption[i]) in _INVISIBLE_CATEGORIES:
        i += 1
    while j > i and unicodedata.category(caption[j - 1]) in _INVISIBLE_CATEGORIES:
        j -= 1
    return caption[i:j].strip()


def check_captions(captions: list[str] | tuple[str, ...]) -> list[str]:
    """Validate user captions: a non-empty list of strings of sane length, each with a visible
    character and no control character; returns them stripped of edge whitespace and invisible
    characters (zero-width spaces, a byte-order mark).

    Raises:
        TextEncoderError: the list itself is wrong; :class:`CaptionError` names a bad caption.
    """
    if isinstance(captions, str):
        raise TextEncoderError("captions must be a list of strings, not a single string")
    caps = list(captions)
    if not caps:
        raise TextEncoderError("no captions given")
    out = []
    for i, c in enumerate(caps):
        if not isinstance(c, str):
            raise CaptionError(i, f"caption {i} is {type(c).__name__}, not a string")
        if len(c) > MAX_CAPTION_CHARS:  # first: the checks below then scan a bounded string
            raise CaptionError(
                i, f"caption {i} is {len(c)} characters long; the limit is {MAX_CAPTION_CHARS}"
            )
        bad = _refused_char(c)
        if bad is not None:
            raise CaptionError(
                i, f"caption {i} holds a control character or lone surrogate (U+{ord(bad):04X})"
            )
        clean = _strip(c)
        if not clean:
            what = "empty" if not c.strip() else "empty (only invisible characters)"
            raise CaptionError(i, f"caption {i} is {what}")
        out.append(clean)
    return out


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, captions: list[str]) -> torch.Tensor:
        """(N,) captions -> (N, dim) float32 embeddings."""
        ...


def is_encoder_file(name: str) -> bool:
    """Whether ``text.encoder`` names a trained encoder file rather than a built-in encoder."""
    return name.endswith(".safetensors")
