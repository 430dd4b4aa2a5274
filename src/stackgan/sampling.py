"""``Text2ImageSampler``: captions -> text encoder -> Conditioning Augmentation -> G -> images.

Loads only an inference export (``.safetensors`` with the config in its metadata). With no path,
it loads the model bundled with the package, trained on the embedded ``shapes`` dataset.
"""

from __future__ import annotations

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
from stackgan.models.registry import build_generator, output_size
from stackgan.pretrained import DEFAULT_MODEL, PRETRAINED, resolve_model
from stackgan.text.base import TextEncoder, check_captions
from stackgan.text.encoders import build_encoder
from stackgan.utils.images import to_uint8
from stackgan.utils.runtime import resolve_device

BUNDLED_MODEL = PRETRAINED[DEFAULT_MODEL].file
SAMPLE_CHUNK = 32  # images per generator call: bounds memory for long caption lists
# Noise for up to NOISE_BLOCK samples is drawn up front (z first, then the CA noise), so a run
# of that size gives the same images in any chunking; longer runs draw it per block of this
# many samples (~60 MB of noise at most), the same rule within each block.
NOISE_BLOCK = 65_536
MAX_SAMPLES = 10_000_000  # images in one call (a larger --num is a typo, not a request)
OutputType = Literal["pil", "np", "pt"]
OUTPUT_TYPES = ("pil", "np", "pt")


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
        return output_size(self.cfg)

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
        self, n: int, seed: int | None = 0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The z (n, z_dim) and CA noise (n, cond_dim) that ``__call__`` draws for ``n`` samples
        from ``generator``, or else from ``seed``: z first, all up front (a few KB per sample),
        so sample i is the same in any chunking (past ``NOISE_BLOCK`` samples, ``stream`` draws
        it one block at a time). Passing a request's own (z, eps) as
        ``latents``/``ca_noise`` reproduces it inside a larger batch (micro-batching)."""
        gen = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
        z = torch.randn(n, self.z_dim, generator=gen)
        eps = torch.randn(n, self.cond_dim, generator=gen)
        return z, eps

    def _noise(
        self,
        n: int,
        seed: int | None,
        generator: torch.Generator | None,
        latents: torch.Tensor | None,
        ca_noise: torch.Tensor | bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`noise`, with ``latents`` / a ``ca_noise`` tensor replacing what was drawn."""
        z, eps = self.noise(n, seed, generator)
        if latents is not None:
            if tuple(latents.shape) != (n, self.z_dim):
                raise ValueError(f"latents must be ({n}, {self.z_dim}), got {tuple(latents.shape)}")
            z = latents.detach().float().cpu()
        if isinstance(ca_noise, torch.Tensor):
            if tuple(ca_noise.shape) != (n, self.cond_dim):
                raise ValueError(
                    f"ca_noise must be ({n}, {self.cond_dim}), got {tuple(ca_noise.shape)}"
                )
            eps = ca_noise.detach().float().cpu()
        elif not ca_noise:
            eps.zero_()
        return z, eps

    @torch.no_grad()
    def _chunks(
        self,
        text_emb: torch.Tensor | None,
        num_images: int,
        z: torch.Tensor,
        eps: torch.Tensor,
        batch_size: int,
        start: int = 0,
    ) -> Iterator[list[torch.Tensor]]:
        """Per chunk of ``batch_size`` samples, each stage's (B, 3, S, S) images in [-1, 1];
        ``z`` and ``eps`` are the noise of samples ``start``, ``start + 1``, ..."""
        n = len(z)
        for s in range(0, n, batch_size):
            emb = None
            if text_emb is not None:  # rows s..e of the caption list repeated num_images times
                rows = torch.arange(start + s, start + min(s + batch_size, n)) // num_images
                emb = text_emb[rows.to(text_emb.device)].to(self.device)
            out = self.generator(
                z[s : s + batch_size].to(self.device),
                emb,
                eps[s : s + batch_size].to(self.device) if emb is not None else None,
            )
            yield [im.float().cpu() for im in out.images]

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
        n = len(emb) * num_images if emb is not None else num_images
        if n > MAX_SAMPLES:
            raise ValueError(f"{n} images asked for; at most {MAX_SAMPLES} in one call")
        if n <= NOISE_BLOCK or latents is not None or isinstance(ca_noise, torch.Tensor):
            z, eps = self._noise(n, seed, generator, latents, ca_noise)
            for stages in self._chunks(emb, num_images, z, eps, batch_size):
                yield _convert(stages, output_type)
            return
        # past NOISE_BLOCK samples the noise is drawn a block at a time (z, then CA noise, per
        # block, from one generator), so memory stays bounded however many are asked for
        gen = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
        for start in range(0, n, NOISE_BLOCK):
            z, eps = self._noise(min(NOISE_BLOCK, n - start), None, gen, None, ca_noise)
            for stages in self._chunks(emb, num_images, z, eps, batch_size, start):
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
            seed: seeds the noise when no ``generator`` is given (None means 0).
            num_images: images per caption.
            text_emb: (N, text_dim) precomputed sentence vectors instead of captions.
            generator: a CPU ``torch.Generator`` to draw z and the CA noise from.
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
