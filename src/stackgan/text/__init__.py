"""Text encoders: the ``TextEncoder`` protocol, ``minilm`` and ``precomputed``."""

from stackgan.text.encoders import (
    MAX_CAPTION_CHARS,
    MiniLMEncoder,
    PrecomputedEmbeddings,
    TextEncoder,
    TextEncoderError,
    build_encoder,
    check_captions,
    dataset_embeddings,
)

__all__ = [
    "MAX_CAPTION_CHARS",
    "MiniLMEncoder",
    "PrecomputedEmbeddings",
    "TextEncoder",
    "TextEncoderError",
    "build_encoder",
    "check_captions",
    "dataset_embeddings",
]
