"""``sample --num`` (issue 31, point 11 and the ``--num`` item of point 10): the noise is drawn
image by image as the chunks are made (issue 29's one rule), so memory does not grow with
--num, and the images do not depend on the chunking."""

from __future__ import annotations

import pytest
import torch

from stackgan.checkpoint import export_generator
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler

from ..conftest import tiny_config
from .bounds import assert_one_line, bounded, cli

EMB = torch.randn(2, 1024, generator=torch.Generator().manual_seed(0))  # char-CNN-RNN-sized


@pytest.fixture(scope="module")
def sampler(tiny_shapes, tmp_path_factory):
    """A tiny untrained model with the bundled model's noise sizes (z 100, CA 128), whose
    all-up-front noise for 2,000,000 images would be 1.8 GB."""
    sizes = {"model.z_dim": 100, "model.cond_dim": 128, "text.encoder": "precomputed"}
    sizes["text.dim"] = 1024  # the precomputed (char-CNN-RNN) embeddings' size
    cfg = tiny_config(tiny_shapes, **sizes)  # vectors given as text_emb: no encoder to load
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    export_generator(path, build_generator(cfg).state_dict(), cfg)
    return Text2ImageSampler.from_pretrained(path)


def _images(stream):
    return torch.cat([out.images for out in stream])


def test_the_images_do_not_depend_on_the_chunking(sampler):
    emb = EMB[:1]
    a = _images(sampler.stream(text_emb=emb, seed=1, num_images=5, batch_size=2, output_type="pt"))
    b = _images(sampler.stream(text_emb=emb, seed=1, num_images=5, batch_size=5, output_type="pt"))
    assert a.shape[0] == 5
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # batch size only moves float rounding
    gen = torch.Generator().manual_seed(1)  # the rule: caption 0 from seed 1, z then CA noise
    rows = [(torch.randn(100, generator=gen), torch.randn(128, generator=gen)) for _ in range(5)]
    z, eps = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    explicit = sampler(text_emb=emb, num_images=5, latents=z, ca_noise=eps, output_type="pt")
    torch.testing.assert_close(a, explicit.images, atol=1e-4, rtol=0)


def test_memory_does_not_grow_with_num(sampler):
    with bounded(max_mb=200):  # the up-front draw was 2.8 GB at 2,000,000
        first = next(sampler.stream(text_emb=EMB[:1], num_images=2_000_000, batch_size=2))
    assert len(first.images) == 2


def test_absurd_num_is_one_line(tmp_path):
    r = cli("sample", "a red star", "--num", "100000000000", "--out", str(tmp_path / "o"))
    assert_one_line(r, "100000000000 images asked for; at most 10000000")
