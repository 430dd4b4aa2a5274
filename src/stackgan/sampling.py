"""``Text2ImageSampler``: captions -> text encoder -> Conditioning Augmentation -> G -> images.

Loads only an inference export (``.safetensors`` with the config in its metadata). With no path,
it loads the model bundled with the package, trained on the embedded ``shapes`` dataset.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn

from stackgan.checkpoint import CheckpointError, embedded_text_encoder, load_export
from stackgan.config import ExperimentConfig
from stackgan.config_checks import image_sizes
from stackgan.models.registry import build_generator
from stackgan.pretrained import DEFAULT_MODEL, PRETRAINED, resolve_model
from stackgan.text.base import TextEncoder, check_captions
from stackgan.text.encoders import build_encoder
from stackgan.utils.images import to_uint8
from stackgan.utils.runtime import resolve_device

BUNDLED_MODEL = PRETRAINED[DEFAULT_MODEL].file
SAMPLE_CHUNK = 32  # images per generator call: bounds memory for long caption lists
MAX_SAMPLES = 10_000_000  # images in one call (a larger --num is a typo, not a request)
OutputType = Literal["pil", "np", "pt"]
OUTPUT_TYPES = ("pil", "np", "pt")


def caption_seed(seed: int, index: int) -> int:
    """The seed of caption ``index`` (0-based) in a call seeded ``seed``: ``seed + index``.

    So caption i of ``sampler(captions, seed=s)`` gets exactly the noise of
    ``sampler([captions[i]], seed=s + i)`` and of ``stackgan sample CAPTION --seed s+i``, and
    ``seed + offset`` for a chunk starting at caption ``offset`` continues the same rule.
    """
    return seed + index


def noise_stream(
    z_dim: int,
    cond_dim: int,
    num_captions: int,
    num_images: int = 1,
    seed: int = 0,
    *,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The noise rule of every image stackgan makes (``sample``, the Python API, ``serve``,
    ``eval`` and the training-time metrics; docs/sampling.md).

    Caption i draws from its own CPU generator, ``torch.Generator().manual_seed(seed + i)``
    (:func:`caption_seed`); its images k = 0, 1, ... draw in turn z_k = randn(z_dim), then the
    Conditioning Augmentation noise eps_k = randn(cond_dim). Image k of caption i thus depends
    on (seed, i, k) alone: not on the batch size, the chunking, ``num_images`` or the other
    captions. An unconditional model is one caption (i = 0) with ``num_images`` images. A given
    ``generator`` replaces the per-caption ones: every image draws from it in turn (for one
    caption, ``generator=torch.Generator().manual_seed(s)`` is the same as ``seed=s``).

    Yields:
        (z_k (z_dim,), eps_k (cond_dim,)) per image, caption-major.
    """
    for i in range(num_captions):
        gen = generator
        if gen is None:
            gen = torch.Generator().manual_seed(caption_seed(seed, i))
        for _ in range(num_images):
            yield torch.randn(z_dim, generator=gen), torch.randn(cond_dim, generator=gen)


def draw_noise(
    z_dim: int,
    cond_dim: int,
    num_captions: int,
    seed: int = 0,
    num_images: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of :func:`noise_stream`'s rows at once: z (n, z_dim) and the CA noise
    (n, cond_dim), n = ``num_captions * num_images``, caption-major."""
    rows = noise_stream(z_dim, cond_dim, num_captions, num_images, seed, generator=generator)
    return _take(rows, num_captions * num_images)


def _take(
    rows: Iterator[tuple[torch.Tensor, torch.Tensor]], n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next ``n`` rows of :func:`noise_stream`, stacked: (n, z_dim), (n, cond_dim)."""
    zs, eps = zip(*itertools.islice(rows, n))
    return torch.stack(zs), torch.stack(eps)


def default_model_path() -> Path:
    """Path of the bundled default model (StackGAN v1 trained on ``shapes``)."""
    return PRETRAINED[DEFAULT_MODEL].path


@dataclass
class SampleOutput:
    """images: the final (highest-resolution) image per sample, in caption order
    (``num_images`` consecutive samples per caption): a list of PIL images, a (B, S, S, 3)
    uint8 array or a (B, 3, S, S) tensor in [-1, 1], by ``output_type``.
    stage_images: for each stage (lowest resolution first), the images of that stage."""

    images: Any
    stage_images: list[Any]


class Text2ImageSampler:
    """Turn sentences into images with a trained StackGAN generator.

    Example::

        sampler = Text2ImageSampler.from_pretrained()          # the bundled shapes model
        out = sampler(["a big red star on a sky blue background"], seed=0)
        out.images[0].save("star.png")
    """

    def __init__(
        self,
        generator: nn.Module,
        cfg: ExperimentConfig,
        encoder: TextEncoder | None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.generator = generator.eval().requires_grad_(False)
        self.cfg = cfg
        self.encoder = encoder
        self.device = torch.device(device)
        self.generator.to(self.device)
        self._num_stages = len(self._all_stage_sizes())  # up_to() cuts it

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> Text2ImageSampler:
        """Load an export written by ``stackgan export`` or ``train`` (``model.safetensors``).

        Args:
            path: the ``.safetensors`` file, or a bundled model's name (``"shapes"``;
                :mod:`stackgan.pretrained`); None for the default bundled model.
            device: where to run; fp32 throughout.
        """
        device = resolve_device(device)  # a bad name fails here, before any loading
        path = resolve_model(path)
        state, cfg = load_export(path)
        generator = build_generator(cfg)
        try:
            generator.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the stored config: {exc}") from exc
        if not cfg.model.conditional:  # StackGAN++ unconditional mode: no text encoder
            return cls(generator, cfg, None, device)
        # a trained encoder travels inside the export; a built-in one is built by name
        encoder: TextEncoder | None = embedded_text_encoder(path, device)
        if encoder is None:
            encoder = build_encoder(cfg.text.encoder, device=device)
        if encoder.dim != cfg.text.dim:
            raise CheckpointError(
                f"{path} expects {cfg.text.dim}-d text but the {cfg.text.encoder} encoder gives "
                f"{encoder.dim}-d"
            )
        return cls(generator, cfg, encoder, device)

    def to(self, device: str | torch.device) -> Text2ImageSampler:
        self.device = resolve_device(device)
        self.generator.to(self.device)
        return self

    @property
    def resolution(self) -> int:
        """The size of the images it returns: its last stage's."""
        return self.stage_sizes[-1]

    @property
    def stage_sizes(self) -> list[int]:
        """Each stage's resolution, lowest first (a v1 Stage-II's first is its Stage-I's)."""
        return self._all_stage_sizes()[: self._num_stages]

    def _all_stage_sizes(self) -> list[int]:
        m, sizes = self.cfg.model, image_sizes(self.cfg)
        return [m.stage1_img_size, *sizes] if m.version == "v1" and m.stage == 2 else sizes

    def up_to(self, resolution: int) -> Text2ImageSampler:
        """A copy (same weights) whose output stops at the stage of ``resolution`` px, e.g. a
        v1 Stage-II's Stage-I or a tree's 64 px branch (``stackgan eval --resolution 64``);
        its images are the whole model's of that stage. ValueError: no stage of that size."""
        sizes = self._all_stage_sizes()
        if resolution not in sizes:
            have = ", ".join(map(str, sizes))
            raise ValueError(f"this model's stages are {have} px; it has none at {resolution} px")
        cut = copy.copy(self)
        cut._num_stages = sizes.index(resolution) + 1
        return cut

    def check_inputs(self, captions: list[str] | tuple[str, ...], num_images: int = 1) -> list[str]:
        """Validate captions (non-empty, sane length) and the sample count; returns clean text."""
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        return check_captions(captions)

    @property
    def conditional(self) -> bool:
        """Whether the model takes text (False for an unconditional StackGAN++)."""
        return self.cfg.model.conditional

    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """(N,) captions -> (N, text_dim) embeddings on the sampler's device."""
        if not self.conditional:
            raise ValueError("this model is unconditional: it takes no captions (use num_images)")
        if self.encoder is None:
            raise ValueError("this sampler has no text encoder: pass text_emb instead of captions")
        emb = self.encoder.encode(self.check_inputs(captions))
        if emb.shape[1] != self.cfg.text.dim:
            raise CheckpointError(
                f"model expects {self.cfg.text.dim}-d text, encoder gave {emb.shape[1]}-d"
            )
        return emb.to(self.device)

    @property
    def z_dim(self) -> int:
        return self.cfg.model.z_dim

    @property
    def cond_dim(self) -> int:
        """Size of the Conditioning Augmentation code (and of its noise ``ca_noise``)."""
        return self.cfg.model.cond_dim

    @property
    def text_dim(self) -> int:
        return self.cfg.text.dim

    def noise(
        self,
        num_captions: int,
        seed: int | None = 0,
        num_images: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The z (n, z_dim) and CA noise (n, cond_dim) that ``__call__`` draws for
        ``num_captions`` captions of ``num_images`` images each (n = their product; an
        unconditional model: one caption), by the rule of :func:`noise_stream`: caption i from
        ``seed + i``, or all from ``generator``. Passing a request's own (z, eps) as
        ``latents``/``ca_noise`` reproduces it inside a larger batch (micro-batching)."""
        return draw_noise(self.z_dim, self.cond_dim, num_captions, seed or 0, num_images, generator)

    def _noise(
        self,
        num_captions: int,
        num_images: int,
        seed: int | None,
        generator: torch.Generator | None,
        latents: torch.Tensor | None,
        ca_noise: torch.Tensor | bool,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """:func:`noise_stream`'s rows, with ``latents`` / a ``ca_noise`` tensor replacing what
        was drawn and ``ca_noise=False`` zeroing the CA noise."""
        n = num_captions * num_images
        if latents is not None and tuple(latents.shape) != (n, self.z_dim):
            raise ValueError(f"latents must be ({n}, {self.z_dim}), got {tuple(latents.shape)}")
        if isinstance(ca_noise, torch.Tensor) and tuple(ca_noise.shape) != (n, self.cond_dim):
            raise ValueError(
                f"ca_noise must be ({n}, {self.cond_dim}), got {tuple(ca_noise.shape)}"
            )
        rows = noise_stream(
            self.z_dim, self.cond_dim, num_captions, num_images, seed or 0, generator=generator
        )
        for j, (z, eps) in enumerate(rows):
            if latents is not None:
                z = latents[j].detach().float().cpu()
            if isinstance(ca_noise, torch.Tensor):
                eps = ca_noise[j].detach().float().cpu()
            elif not ca_noise:
                eps = torch.zeros_like(eps)
            yield z, eps

    @torch.no_grad()
    def _chunks(
        self,
        text_emb: torch.Tensor | None,
        num_images: int,
        noise: Iterator[tuple[torch.Tensor, torch.Tensor]],
        n: int,
        batch_size: int,
    ) -> Iterator[list[torch.Tensor]]:
        """Per chunk of ``batch_size`` of the ``n`` samples, each stage's (B, 3, S, S) images in
        [-1, 1]; ``noise`` gives each sample's (z, eps) in turn (drawn chunk by chunk, so
        memory stays bounded however many samples are asked for)."""
        for s in range(0, n, batch_size):
            z, eps = _take(noise, min(batch_size, n - s))
            emb = None
            if text_emb is not None:  # rows s..e of the caption list repeated num_images times
                rows = torch.arange(s, s + len(z)) // num_images
                emb = text_emb[rows.to(text_emb.device)].to(self.device)
            out = self.generator(
                z.to(self.device), emb, eps.to(self.device) if emb is not None else None
            )
            yield [im.float().cpu() for im in out.images[: self._num_stages]]

    def _embeddings(
        self,
        captions: list[str] | tuple[str, ...] | None,
        num_images: int,
        text_emb: torch.Tensor | None,
    ) -> torch.Tensor | None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        if not self.conditional:
            if captions or text_emb is not None:
                raise ValueError("this model is unconditional: it takes no captions")
            return None
        if text_emb is not None:
            if captions:
                raise ValueError("give captions or text_emb, not both")
            if text_emb.ndim != 2 or text_emb.shape[1] != self.text_dim:
                raise ValueError(
                    f"text_emb must be (N, {self.text_dim}), got {tuple(text_emb.shape)}"
                )
            return text_emb.float()
        if captions is None:
            raise ValueError("this model is text-conditioned: give captions")
        return self.encode_text(self.check_inputs(captions, num_images))

    def stream(
        self,
        captions: list[str] | tuple[str, ...] | None = None,
        seed: int | None = 0,
        num_images: int = 1,
        batch_size: int = SAMPLE_CHUNK,
        text_emb: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        ca_noise: torch.Tensor | bool = True,
        output_type: OutputType = "pil",
    ) -> Iterator[SampleOutput]:
        """Like ``__call__``, one :class:`SampleOutput` per ``batch_size`` images, so that memory
        stays bounded by the batch whatever the number of captions; the images are the same as
        ``__call__`` gives."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        emb = self._embeddings(captions, num_images, text_emb)
        num_captions = len(emb) if emb is not None else 1  # unconditional: one "caption"
        n = num_captions * num_images
        if n > MAX_SAMPLES:
            raise ValueError(f"{n} images asked for; at most {MAX_SAMPLES} in one call")
        noise = self._noise(num_captions, num_images, seed, generator, latents, ca_noise)
        for stages in self._chunks(emb, num_images, noise, n, batch_size):
            yield _convert(stages, output_type)

    def __call__(
        self,
        captions: list[str] | tuple[str, ...] | None = None,
        seed: int | None = 0,
        num_images: int = 1,
        *,
        text_emb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        ca_noise: torch.Tensor | bool = True,
        output_type: OutputType = "pil",
        batch_size: int = SAMPLE_CHUNK,
    ) -> SampleOutput:
        """Generate ``num_images`` images per caption, reproducibly.

        Args:
            captions: sentences; None for an unconditional model (then ``num_images`` in all)
                or when ``text_emb`` is given.
            seed: seeds the noise when no ``generator`` is given (None means 0): caption i
                draws from ``seed + i`` (:func:`noise_stream`, docs/sampling.md).
            num_images: images per caption.
            text_emb: (N, text_dim) precomputed sentence vectors instead of captions.
            generator: a CPU ``torch.Generator`` to draw every image's z and CA noise from,
                in turn, instead of the per-caption seeds.
            latents: (N * num_images, z_dim) z to use instead of drawing it.
            ca_noise: True draws the Conditioning Augmentation noise, False conditions on its
                mean alone, a (N * num_images, cond_dim) tensor gives it.
            output_type: "pil" (PIL images), "np" ((B, S, S, 3) uint8 arrays) or "pt"
                ((B, 3, S, S) float tensors in [-1, 1]).
            batch_size: samples per generator call (bounds memory, not the result).

        Returns:
            :class:`SampleOutput`; ``images`` are the last stage's.
        """
        outs = list(
            self.stream(
                captions,
                seed,
                num_images,
                batch_size,
                text_emb,
                generator=generator,
                latents=latents,
                ca_noise=ca_noise,
                output_type=output_type,
            )
        )
        stages = [
            _join([o.stage_images[i] for o in outs]) for i in range(len(outs[0].stage_images))
        ]
        return SampleOutput(images=stages[-1], stage_images=stages)

    def generate(
        self,
        text_emb: torch.Tensor | None,
        seed: int = 0,
        num_images: int = 1,
        ca_noise: bool = True,
    ) -> list[torch.Tensor]:
        """Embeddings (N, D) -> per stage, (N * num_images, 3, S, S) tensors in [-1, 1]
        (``__call__(text_emb=..., output_type="pt").stage_images``)."""
        out = self(
            None,
            seed,
            num_images,
            text_emb=text_emb,
            ca_noise=ca_noise,
            output_type="pt",
        )
        return list(out.stage_images)


def _convert(stages: list[torch.Tensor], output_type: OutputType) -> SampleOutput:
    """Per-stage (B, 3, S, S) float tensors -> the asked output type."""
    conv: list[Any]
    if output_type == "pt":
        conv = list(stages)
    elif output_type == "np":
        conv = [to_uint8(t) for t in stages]
    else:
        conv = [[Image.fromarray(a) for a in to_uint8(t)] for t in stages]
    return SampleOutput(images=conv[-1], stage_images=conv)


def _join(parts: list[Any]) -> Any:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [im for p in parts for im in p]


@runtime_checkable
class Sampler(Protocol):
    """What the metrics, the report's figures and training-time evaluation use of a sampler.

    :class:`Text2ImageSampler` is one; a stand-in (a test double, a wrapper that adds
    truncation) needs only these members. ``isinstance(obj, Sampler)`` checks they exist.
    """

    device: torch.device
    encoder: TextEncoder | None

    @property
    def resolution(self) -> int: ...

    @property
    def conditional(self) -> bool: ...

    @property
    def z_dim(self) -> int: ...

    @property
    def cond_dim(self) -> int: ...

    def encode_text(self, captions: list[str]) -> torch.Tensor: ...

    def generate(
        self,
        text_emb: torch.Tensor | None,
        seed: int = 0,
        num_images: int = 1,
        ca_noise: bool = True,
    ) -> list[torch.Tensor]: ...

    def __call__(
        self,
        captions: list[str] | tuple[str, ...] | None = None,
        seed: int | None = 0,
        num_images: int = 1,
        *,
        text_emb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        ca_noise: torch.Tensor | bool = True,
        output_type: OutputType = "pil",
        batch_size: int = SAMPLE_CHUNK,
    ) -> SampleOutput: ...
