"""Text encoders: the ``TextEncoder`` protocol, ``minilm`` and ``precomputed``."""

from stackgan.text.base import (
    MAX_CAPTION_CHARS,
    CaptionError,
    TextEncoder,
    TextEncoderError,
    check_captions,
)
from stackgan.text.encoders import (
    MiniLMEncoder,
    PrecomputedEmbeddings,
    build_encoder,
    dataset_embeddings,
)

__all__ = [
    "MAX_CAPTION_CHARS",
    "CaptionError",
    "MiniLMEncoder",
    "PrecomputedEmbeddings",
    "TextEncoder",
    "TextEncoderError",
    "build_encoder",
    "check_captions",
    "dataset_embeddings",
]
