"""``Text2ImageSampler``: captions -> text encoder -> Conditioning Augmentation -> G -> images.

Loads only an inference export (``.safetensors`` with the config in its metadata). With no path,
it loads the model bundled with the package, trained on the embedded ``shapes`` dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from stackgan.checkpoint import CheckpointError, embedded_text_encoder, load_export
from stackgan.config import ExperimentConfig
from stackgan.models.registry import build_generator, output_size
from stackgan.text.encoders import TextEncoder, build_encoder, check_captions
from stackgan.utils.images import to_uint8
from stackgan.utils.runtime import resolve_device

BUNDLED_MODEL = "shapes-v1.safetensors"
SAMPLE_CHUNK = 32  # images per generator call: bounds memory for long caption lists


def default_model_path() -> Path:
    """Path of the bundled default model (StackGAN v1 trained on ``shapes``)."""
    return Path(str(resources.files("stackgan") / "assets" / BUNDLED_MODEL))


@dataclass
class SampleOutput:
    """images: the final (highest-resolution) image per sample, in caption order
    (``num_images`` consecutive samples per caption).
    stage_images: for each stage (lowest resolution first), the images of that stage."""

    images: list[Image.Image]
    stage_images: list[list[Image.Image]]


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
            path: the ``.safetensors`` file; None for the bundled ``shapes`` model.
            device: where to run; fp32 throughout.
        """
        device = resolve_device(device)  # a bad name fails here, before any loading
        path = Path(path) if path is not None else default_model_path()
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
        return self.encoder is not None

    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """(N,) captions -> (N, text_dim) embeddings on the sampler's device."""
        if self.encoder is None:
            raise ValueError("this model is unconditional: it takes no captions (use num_images)")
        emb = self.encoder.encode(self.check_inputs(captions))
        if emb.shape[1] != self.cfg.text.dim:
            raise CheckpointError(
                f"model expects {self.cfg.text.dim}-d text, encoder gave {emb.shape[1]}-d"
            )
        return emb.to(self.device)

    def _noise(self, n: int, seed: int, ca_noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """z (n, z_dim) and CA noise (n, cond_dim) for ``n`` samples, all drawn up front from
        ``seed`` (a few KB per sample), so that sample i is the same in any chunking."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen)
        eps = torch.randn(n, self.cfg.model.cond_dim, generator=gen)
        if not ca_noise:
            eps.zero_()
        return z, eps

    @torch.no_grad()
    def _chunks(
        self,
        text_emb: torch.Tensor | None,
        seed: int,
        num_images: int,
        ca_noise: bool = True,
        batch_size: int = SAMPLE_CHUNK,
    ) -> Iterator[list[torch.Tensor]]:
        """Per chunk of ``batch_size`` samples, each stage's (B, 3, S, S) images in [-1, 1]."""
        n = len(text_emb) * num_images if text_emb is not None else num_images
        z, eps = self._noise(n, seed, ca_noise)
        for s in range(0, n, batch_size):
            emb = None
            if text_emb is not None:  # rows s..e of the caption list repeated num_images times
                rows = torch.arange(s, min(s + batch_size, n)) // num_images
                emb = text_emb[rows.to(text_emb.device)].to(self.device)
            out = self.generator(
                z[s : s + batch_size].to(self.device),
                emb,
                eps[s : s + batch_size].to(self.device) if emb is not None else None,
            )
            yield [im.float().cpu() for im in out.images]

    def generate(
        self,
        text_emb: torch.Tensor | None,
        seed: int = 0,
        num_images: int = 1,
        ca_noise: bool = True,
    ) -> list[torch.Tensor]:
        """Embeddings (N, D) -> per stage, (N * num_images, 3, S, S) tensors in [-1, 1].

        ``text_emb=None`` (unconditional models) gives ``num_images`` images.
        ``ca_noise=False`` conditions on mu alone (no Conditioning Augmentation sampling).
        """
        chunks = list(self._chunks(text_emb, seed, num_images, ca_noise))
        return [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]

    def _embeddings(
        self, captions: list[str] | tuple[str, ...] | None, num_images: int
    ) -> torch.Tensor | None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        if self.encoder is None:
            if captions:
                raise ValueError("this model is unconditional: it takes no captions")
            return None
        if captions is None:
            raise ValueError("this model is text-conditioned: give captions")
        return self.encode_text(self.check_inputs(captions, num_images))

    def stream(
        self,
        captions: list[str] | tuple[str, ...] | None = None,
        seed: int = 0,
        num_images: int = 1,
        batch_size: int = SAMPLE_CHUNK,
        text_emb: torch.Tensor | None = None,
    ) -> Iterator[SampleOutput]:
        """Like ``__call__``, one :class:`SampleOutput` per ``batch_size`` images, so that memory
        stays bounded by the batch whatever the number of captions; the images are the same as
        ``__call__`` gives. ``text_emb`` (N, D): precomputed sentence vectors instead of
        captions."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if text_emb is None:
            text_emb = self._embeddings(captions, num_images)
        elif self.encoder is None or text_emb.shape[1:] != (self.cfg.text.dim,):
            raise ValueError(
                f"text_emb must be (N, {self.cfg.text.dim}) for this model"
                if self.encoder is not None
                else "this model is unconditional: it takes no text"
            )
        for stages in self._chunks(text_emb, seed, num_images, batch_size=batch_size):
            pils = [[Image.fromarray(a) for a in to_uint8(t)] for t in stages]
            yield SampleOutput(images=pils[-1], stage_images=pils)

    def __call__(
        self,
        captions: list[str] | tuple[str, ...] | None = None,
        seed: int = 0,
        num_images: int = 1,
    ) -> SampleOutput:
        """Generate ``num_images`` images per caption (in total, for an unconditional model that
        takes ``captions=None``), reproducibly from ``seed``."""
        outs = list(self.stream(captions, seed, num_images))
        return SampleOutput(
            images=[im for o in outs for im in o.images],
            stage_images=[
                [im for o in outs for im in o.stage_images[i]]
                for i in range(len(outs[0].stage_images))
            ],
        )
