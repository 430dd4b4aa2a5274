"""What every text encoder shares: the ``TextEncoder`` protocol, caption validation and the
error type (used by ``encoders`` and ``trainable`` alike)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

MAX_CAPTION_CHARS = 1000  # far beyond any dataset caption; longer input is almost surely a mistake


class TextEncoderError(ValueError):
    """Bad caption input or an encoder that cannot be used."""


def check_captions(captions: list[str] | tuple[str, ...]) -> list[str]:
    """Validate user captions: a non-empty list of non-empty strings of sane length."""
    if isinstance(captions, str):
        raise TextEncoderError("captions must be a list of strings, not a single string")
    caps = list(captions)
    if not caps:
        raise TextEncoderError("no captions given")
    for i, c in enumerate(caps):
        if not isinstance(c, str):
            raise TextEncoderError(f"caption {i} is {type(c).__name__}, not a string")
        if not c.strip():
            raise TextEncoderError(f"caption {i} is empty")
        if len(c) > MAX_CAPTION_CHARS:
            raise TextEncoderError(
                f"caption {i} is {len(c)} characters long; the limit is {MAX_CAPTION_CHARS}"
            )
    return [c.strip() for c in caps]


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
