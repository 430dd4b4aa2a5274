"""A text encoder trained on the dataset's own captions against image features (DS-SJE / DAMSM).

Reed et al. (CVPR 2016) trained StackGAN's char-CNN-RNN jointly with an image encoder so that
matching captions and images score high; AttnGAN's DAMSM does the same with a bi-LSTM. This is
that recipe in PyTorch:

- **Text side: words built from character n-grams, read by a bidirectional GRU.** Each word is
  the mean of hashed embeddings of the word itself and of its character 3- to 5-grams (with
  ``<``/``>`` word boundaries; the fastText construction), so a word never seen in training
  still gets a vector from its spelling ("crimsonish" shares n-grams with "crimson") and
  nothing is dropped. A BiGRU reads the words; mean- and max-pooled states go through a linear
  layer to the embedding. Word-level recurrence over n-gram words is several times cheaper
  than a char-level CNN-RNN over ~100 characters, with the same open vocabulary.
- **Image side: frozen Inception-v3 pool3 features** (the FID network, computed once and cached
  for FID anyway) and a trained linear projection. A small dataset (1,906 birds-cub50 training
  images) would overfit an image CNN trained from scratch; pool3 features are strong and free.
- **Loss: symmetric matching cross-entropy** over cosine similarities in a batch (caption ->
  its image among the batch's images, and image -> its caption), with a learned temperature:
  the sentence-level DAMSM loss, a softmax form of DS-SJE's structured objective.

Saved as one ``.safetensors`` with a versioned metadata header; ``text.encoder`` set to the
file's path selects it for training, sampling and the demo.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stackgan.text.base import TextEncoderError, check_captions
from stackgan.utils.cache import atomic_write, file_digest, read_safetensors

FORMAT = "stackgan-text-encoder"
FORMAT_VERSION = 1
NGRAM_RANGE = (3, 5)  # fastText's character n-gram lengths
INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature
MAX_LOGIT_SCALE = math.log(100.0)
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _WORD.findall(text.lower())


def subword_ids(word: str, buckets: int) -> list[int]:
    """Hash bucket ids of the word and its character n-grams (stable across runs: CRC32)."""
    w = f"<{word}>"
    grams = [w] + [
        w[i : i + n]
        for n in range(NGRAM_RANGE[0], NGRAM_RANGE[1] + 1)
        for i in range(len(w) - n + 1)
    ]
    return [zlib.crc32(g.encode()) % buckets for g in dict.fromkeys(grams)]


class SentenceEncoder(nn.Module):
    """Captions -> (N, out_dim) sentence embeddings.

    Args:
        buckets: size of the hashed n-gram table.
        emb_dim: word vector size.
        hidden: GRU hidden size per direction.
        out_dim: sentence embedding size (what the GAN's Conditioning Augmentation reads).
    """

    def __init__(
        self, buckets: int = 50_000, emb_dim: int = 128, hidden: int = 256, out_dim: int = 256
    ) -> None:
        super().__init__()
        self.buckets, self.emb_dim, self.hidden, self.out_dim = buckets, emb_dim, hidden, out_dim
        self.ngrams = nn.EmbeddingBag(buckets, emb_dim, mode="mean")
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(4 * hidden, out_dim)  # mean- and max-pooled bidirectional states

    def config(self) -> dict[str, int]:
        return {
            "buckets": self.buckets,
            "emb_dim": self.emb_dim,
            "hidden": self.hidden,
            "out_dim": self.out_dim,
        }

    def forward(self, captions: list[str]) -> torch.Tensor:
        """(N,) captions -> (N, out_dim) unnormalised embeddings."""
        device = self.out.weight.device
        toks = [words(c) or ["<empty>"] for c in captions]
        ids: list[int] = []
        offsets: list[int] = []
        for t in toks:
            for w in t:
                offsets.append(len(ids))
                ids.extend(subword_ids(w, self.buckets))
        vecs = self.ngrams(
            torch.tensor(ids, device=device), torch.tensor(offsets, device=device)
        )  # (total words, emb_dim)
        lengths = torch.tensor([len(t) for t in toks])
        padded = nn.utils.rnn.pad_sequence(list(vecs.split(lengths.tolist())), batch_first=True)
        packed = nn.utils.rnn.pack_padded_sequence(
            padded, lengths, batch_first=True, enforce_sorted=False
        )
        states, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True)  # (N, L, 2*hidden)
        mask = (torch.arange(h.shape[1])[None] < lengths[:, None]).to(device)[..., None]
        mean = (h * mask).sum(1) / lengths.to(device)[:, None]
        mx = h.masked_fill(~mask, float("-inf")).amax(1)
        out: torch.Tensor = self.out(torch.cat([mean, mx], dim=1))
        return out


def matching_loss(
    text_emb: torch.Tensor,
    image_emb: torch.Tensor,
    logit_scale: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric cross-entropy over cosine similarities: row i of each side matches row i of
    the other (each caption picks its image among the batch's, and each image its caption).

    ``labels`` (B,): class ids; other pairs of the same class are left out of the softmax, as
    AttnGAN's DAMSM does, since a caption of one bird often fits another bird of its species
    just as well and treating it as a negative teaches noise.
    """
    t = F.normalize(text_emb, dim=1)
    v = F.normalize(image_emb, dim=1)
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * t @ v.T  # (B, B)
    target = torch.arange(len(t), device=t.device)
    if labels is not None:
        same = labels[:, None] == labels[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same.to(logits.device), float("-inf"))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class TextImageMatcher(nn.Module):
    """The sentence encoder, the image projection and the temperature, trained together."""

    def __init__(self, text: SentenceEncoder, image_dim: int) -> None:
        super().__init__()
        self.text = text
        self.image = nn.Linear(image_dim, text.out_dim)
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    def loss(
        self,
        text_emb: torch.Tensor,
        image_feats: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return matching_loss(text_emb, self.image(image_feats), self.logit_scale, labels)


class TrainedTextEncoder:
    """A saved :class:`TextImageMatcher`'s text side behind the ``TextEncoder`` interface.

    Embeddings are L2-normalised and scaled to norm sqrt(dim), like ``minilm`` (unit variance
    per component, the scale the GAN's Conditioning Augmentation is initialised for).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        *,
        matcher: TextImageMatcher | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Load the encoder file at ``path``, or wrap an already built ``matcher`` (and its
        header ``meta``, with a ``digest``), e.g. one embedded in a GAN export."""
        if matcher is None:
            if path is None:
                raise TypeError("TrainedTextEncoder needs a path or a matcher")
            matcher, meta = load_matcher(path, device)
        self.path = Path(path) if path is not None else None
        self.matcher, self.meta = matcher.to(device), dict(meta or {})
        self.dim = self.matcher.text.out_dim
        self.name = f"trained-{self.meta.get('digest', 'embedded')}"

    @torch.no_grad()
    def encode(self, captions: list[str], progress: bool = False) -> torch.Tensor:

        caps = check_captions(captions)
        self.matcher.eval()
        out = [self.matcher.text(caps[s : s + 512]) for s in range(0, len(caps), 512)]
        emb = F.normalize(torch.cat(out).float(), dim=1) * math.sqrt(self.dim)
        return emb.cpu()

    @torch.no_grad()
    def encode_images(self, feats: np.ndarray) -> torch.Tensor:
        """(N, image_dim) pool3 features -> (N, dim) embeddings in the text space."""
        self.matcher.eval()
        out: torch.Tensor = self.matcher.image(torch.from_numpy(feats).float())
        return out


def save_matcher(path: str | Path, matcher: TextImageMatcher, info: dict[str, Any]) -> None:
    """Write the encoder atomically, with its architecture and provenance in the header."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {"format": FORMAT, **matcher_header(matcher), "info": json.dumps(info)}
    state = {k: v.detach().cpu().contiguous() for k, v in matcher.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def load_matcher(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[TextImageMatcher, dict[str, Any]]:
    """Rebuild a saved matcher; a clear error for a missing, foreign or damaged file."""
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise TextEncoderError(f"text encoder file not found: {path}")
    try:
        meta, state = read_safetensors(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise TextEncoderError(f"cannot read text encoder {path}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise TextEncoderError(
            f"{path} is not a stackgan text encoder (format {meta.get('format')})"
        )
    matcher = matcher_from_state(meta, state, str(path))
    return matcher.to(device), {**meta, "digest": file_digest(path)}


def matcher_from_state(
    meta: dict[str, str], state: dict[str, torch.Tensor], where: str
) -> TextImageMatcher:
    """Rebuild a matcher from its header fields and weights; ``where`` names the source in
    errors (a file, or a GAN export that embeds the encoder)."""

    version = str(meta.get("format_version", "0"))
    if not version.isdigit():
        raise TextEncoderError(f"{where}: invalid format_version {version[:20]!r}")
    if int(version) > FORMAT_VERSION:
        raise TextEncoderError(f"{where} was written by a newer stackgan; upgrade to read it")
    try:
        args = json.loads(meta["text"])
        image_dim = int(meta["image_dim"])
        shapes = matcher_shapes(args, image_dim)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise TextEncoderError(f"{where}: invalid text encoder header: {exc}") from exc
    # the header's sizes are compared with the weights present before anything is built: a
    # header claiming 400,000 x 2,048 buckets next to small weights allocates nothing
    wrong = sorted(
        k
        for k in shapes.keys() | state.keys()
        if k not in state or k not in shapes or tuple(state[k].shape) != shapes[k]
    )
    if wrong:
        k = wrong[0]
        got = tuple(state[k].shape) if k in state else "missing"
        want = shapes.get(k, "unexpected")
        raise TextEncoderError(
            f"{where}: weights do not match its header: {len(wrong)} tensors differ (e.g. {k}: "
            f"{got} in the file, {want} for its header)"
        )
    matcher = TextImageMatcher(SentenceEncoder(**args), image_dim)
    try:
        matcher.load_state_dict(state)
    except RuntimeError as exc:
        raise TextEncoderError(f"{where}: weights do not match its header: {exc}") from exc
    return matcher


MAX_ENCODER_SIZE = 1 << 24  # buckets; every other size up to MAX_ENCODER_WIDTH
MAX_ENCODER_WIDTH = 8192


def matcher_shapes(args: Any, image_dim: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of ``TextImageMatcher(SentenceEncoder(**args), image_dim)``, worked
    out from the sizes alone (each checked to be a positive int in range) without building it.
    ``tests`` compare this with the real module's state dict."""
    if not isinstance(args, dict) or set(args) - {"buckets", "emb_dim", "hidden", "out_dim"}:
        raise ValueError("the text field must map buckets, emb_dim, hidden and out_dim")
    sizes = {"buckets": 50_000, "emb_dim": 128, "hidden": 256, "out_dim": 256, **args}
    sizes["image_dim"] = image_dim
    for name, value in sizes.items():
        top = MAX_ENCODER_SIZE if name == "buckets" else MAX_ENCODER_WIDTH
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise ValueError(f"{name} must be an integer in 1..{top}, got {str(value)[:20]}")
    e, h, o = sizes["emb_dim"], sizes["hidden"], sizes["out_dim"]
    shapes: dict[str, tuple[int, ...]] = {
        "logit_scale": (),
        "text.ngrams.weight": (sizes["buckets"], e),
        "text.out.weight": (o, 4 * h),
        "text.out.bias": (o,),
        "image.weight": (o, sizes["image_dim"]),
        "image.bias": (o,),
    }
    for suffix in ("", "_reverse"):  # the bidirectional GRU's two directions
        shapes[f"text.rnn.weight_ih_l0{suffix}"] = (3 * h, e)
        shapes[f"text.rnn.weight_hh_l0{suffix}"] = (3 * h, h)
        shapes[f"text.rnn.bias_ih_l0{suffix}"] = (3 * h,)
        shapes[f"text.rnn.bias_hh_l0{suffix}"] = (3 * h,)
    return shapes


def matcher_header(matcher: TextImageMatcher) -> dict[str, str]:
    """The header fields :func:`matcher_from_state` rebuilds a matcher from."""
    return {
        "format_version": str(FORMAT_VERSION),
        "text": json.dumps(matcher.text.config()),
        "image_dim": str(matcher.image.in_features),
    }


def fit_matching(
    batch_loss: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
    params: list[nn.Parameter],
    num_items: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
    desc: str = "matching",
) -> list[float]:
    """The loop that fits a matching model: Adam on ``params``; each epoch a fresh permutation of
    ``num_items`` items in batches of at least two, ``batch_loss(indices, rng)`` giving the
    loss (it draws its random caption choices from ``rng``). Returns the mean loss per epoch."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        order = rng.permutation(num_items)
        total, count = 0.0, 0
        for s in range(0, num_items - 1, batch_size):  # s < n - 1: every batch has two or more
            idx = order[s : s + batch_size]
            loss = batch_loss(idx, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        losses.append(total / max(count, 1))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
