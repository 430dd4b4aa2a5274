"""One noise rule (docs/sampling.md): image k of caption i under seed s depends on (s, i, k)
alone, and an image from an ``eval`` report is remade pixel for pixel by ``stackgan sample``."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stackgan.checkpoint import export_generator
from stackgan.cli import main
from stackgan.metrics.evaluate import EvalOptions, evaluate
from stackgan.metrics.generation import generate_images
from stackgan.metrics.manifest import MANIFEST_FILE
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler, caption_seed, noise_stream

from .conftest import MeanColour, tiny_config

CAPS = ["a big red star on a sky blue background", "a tiny violet circle on a beige background"]
CAPS += ["a small green square on a white background"]


@pytest.fixture(scope="module")
def model(tiny_shapes, tmp_path_factory):
    cfg = tiny_config(tiny_shapes, stage=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    export_generator(path, build_generator(cfg).state_dict(), cfg)
    return path


def test_the_rule_is_one_generator_per_caption_seeded_seed_plus_i():
    rows = list(noise_stream(8, 6, num_captions=3, num_images=2, seed=10))
    gen = torch.Generator().manual_seed(12)  # caption 2 of seed 10
    for k in range(2):
        z, eps = torch.randn(8, generator=gen), torch.randn(6, generator=gen)
        assert torch.equal(rows[2 * 2 + k][0], z) and torch.equal(rows[2 * 2 + k][1], eps)
    assert caption_seed(10, 2) == 12


def test_image_k_of_caption_i_does_not_depend_on_the_batch(model):
    sampler = Text2ImageSampler.from_pretrained(model)
    z, eps = sampler.noise(3, seed=4, num_images=3)  # captions 0..2, images 0..2 each
    z1, eps1 = sampler.noise(1, seed=4 + 2, num_images=2)  # caption 2 alone, fewer images
    assert torch.equal(z[6:8], z1) and torch.equal(eps[6:8], eps1)
    emb = sampler.encode_text(CAPS)
    for batch_size in (1, 2, 9):  # the chunking does not change the noise (nor the images)
        out = sampler(text_emb=emb, seed=4, num_images=3, batch_size=batch_size, output_type="pt")
        given = sampler(text_emb=emb, num_images=3, latents=z, ca_noise=eps, batch_size=batch_size)
        assert np.array_equal(
            np.stack([np.asarray(im) for im in given.images]),
            (((out.images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()),
        )
    # caption 1 inside the list draws what caption 1 alone draws with seed 4 + 1
    alone = sampler(text_emb=emb[1:2], seed=5, num_images=3, batch_size=3, output_type="pt")
    inside = sampler(text_emb=emb, seed=4, num_images=3, batch_size=3, output_type="pt")
    torch.testing.assert_close(inside.images[3:6], alone.images, atol=1e-5, rtol=0)
    # the metrics' generation (chunks of captions) follows the same rule
    metric = torch.cat(list(generate_images(sampler, CAPS, seed=4, batch=2)))
    one = sampler(text_emb=emb, seed=4, num_images=1, batch_size=2, output_type="pt")
    torch.testing.assert_close(metric, one.images, atol=1e-5, rtol=0)


def test_an_eval_image_is_remade_exactly_by_stackgan_sample(model, tiny_shapes, tmp_path):
    out = tmp_path / "eval"
    opts = EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12, seed=7)
    evaluate(opts, extractor=MeanColour(), progress=False)
    entries = [json.loads(ln) for ln in (out / MANIFEST_FILE).read_text().splitlines()]
    assert len(entries) >= 8 and [e["caption_index"] for e in entries] == list(range(len(entries)))
    assert all(e["seed"] == 7 + e["caption_index"] and e["image_index"] == 0 for e in entries)
    assert "fig-stages.png: row 0" in entries[0]["shown_in"]
    for entry in (entries[0], entries[5]):
        words = shlex.split(entry["command"])  # stackgan sample CAPTION --seed S --model M
        assert words[:3] == ["stackgan", "sample", entry["caption"]]
        r = CliRunner().invoke(main, [*words[1:], "--out", str(tmp_path / f"s{entry['seed']}")])
        assert r.exit_code == 0, r.output
        made = np.asarray(Image.open(tmp_path / f"s{entry['seed']}" / "0000.png"))
        shown = np.asarray(Image.open(out / entry["file"]))
        assert made.shape == shown.shape == (32, 32, 3)
        assert np.array_equal(made, shown)  # pixel for pixel
    # the report's first stage row is that sample's stages side by side
    stages = np.asarray(Image.open(out / "fig-stages.png"))
    assert np.array_equal(stages[:32, 32:], np.asarray(Image.open(out / entries[0]["file"])))
