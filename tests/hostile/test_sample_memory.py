"""``sample --num`` (issue 31, point 11 and the ``--num`` item of point 10): the noise is drawn
a block at a time past ``NOISE_BLOCK`` images, so memory does not grow with --num, and the
images up to that many are those of the all-up-front rule."""

from __future__ import annotations

import pytest
import torch

import stackgan.sampling as sampling
from stackgan.sampling import Text2ImageSampler

from .bounds import assert_one_line, bounded, cli


@pytest.fixture(scope="module")
def sampler():
    return Text2ImageSampler.from_pretrained()  # the bundled shapes model


def _images(stream):
    return torch.cat([out.images for out in stream])


def test_up_to_a_block_the_noise_rule_is_unchanged(sampler):
    n = 6
    z, eps = sampler.noise(n, seed=3)  # z for all samples first, then the CA noise
    explicit = sampler(["a red star"], num_images=n, latents=z, ca_noise=eps, output_type="pt")
    streamed = _images(
        sampler.stream(["a red star"], seed=3, num_images=n, batch_size=4, output_type="pt")
    )
    torch.testing.assert_close(streamed, explicit.images)


def test_past_a_block_the_images_do_not_depend_on_the_chunking(sampler, monkeypatch):
    monkeypatch.setattr(sampling, "NOISE_BLOCK", 4)
    caps = ["a red star", "a blue circle"]
    a = _images(sampler.stream(caps, seed=1, num_images=5, batch_size=3, output_type="pt"))
    b = _images(sampler.stream(caps, seed=1, num_images=5, batch_size=7, output_type="pt"))
    assert a.shape[0] == 10
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # batch size only moves float rounding
    gen = torch.Generator().manual_seed(1)  # the rule: z then CA noise, per block of 4
    blocks = [sampler.noise(k, generator=gen) for k in (4, 4, 2)]
    z, eps = (torch.cat(parts) for parts in zip(*blocks))
    explicit = sampler(caps, num_images=5, latents=z, ca_noise=eps, output_type="pt")
    torch.testing.assert_close(a, explicit.images, atol=1e-4, rtol=0)


def test_memory_does_not_grow_with_num(sampler):
    with bounded(max_mb=200):  # the up-front draw was 2.8 GB at 2,000,000
        first = next(sampler.stream(["a red star"], num_images=2_000_000, batch_size=2))
    assert len(first.images) == 2


def test_absurd_num_is_one_line(tmp_path):
    r = cli("sample", "a red star", "--num", "100000000000", "--out", str(tmp_path / "o"))
    assert_one_line(r, "100000000000 images asked for; at most 10000000")
