from pathlib import Path

import numpy as np
import pytest
import torch

from stackgan.data import shapes
from stackgan.metrics.shapes_judge import judge_image, names_background, score
from stackgan.sampling import Text2ImageSampler, default_model_path
from stackgan.text import MAX_CAPTION_CHARS, TextEncoderError, check_captions


def test_check_captions():
    assert check_captions([" a red star "]) == ["a red star"]
    with pytest.raises(TextEncoderError, match="caption 1 is empty"):
        check_captions(["ok", ""])
    with pytest.raises(TextEncoderError, match="characters long"):
        check_captions(["x" * (MAX_CAPTION_CHARS + 1)])
    with pytest.raises(TextEncoderError, match="no captions"):
        check_captions([])
    with pytest.raises(TextEncoderError, match="list of strings"):
        check_captions("a red star")  # type: ignore[arg-type]


def test_judge_on_real_renders():
    rng = np.random.default_rng(0)
    import random

    r = random.Random(0)
    attrs = [shapes.sample_attributes(r) for _ in range(40)]
    imgs = [shapes.render(a, 256) for a in attrs]
    res = score(imgs, attrs, [False] * 40)
    assert res["object_color_acc"] == 1.0 and res["background_acc"] == 1.0
    by_size = res["object_color_acc_by_size"]
    assert set(by_size) <= {"small", "medium", "large"} and all(v == 1.0 for v in by_size.values())
    # a blank canvas of the right background fails the object question at every size
    palette = shapes.BACKGROUND_PALETTE
    blanks = [np.full_like(im, palette[a.background]) for im, a in zip(imgs, attrs)]
    res = score(blanks, attrs, [False] * 40)
    assert res["object_color_acc"] == 0.0 and res["background_acc"] == 1.0
    assert all(v == 0.0 for v in res["object_color_acc_by_size"].values())
    noise = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    assert sum(judge_image(n).background == "gray" for n in noise) >= 4  # noise averages grey
    blank = np.full((64, 64, 3), shapes.BACKGROUND_PALETTE["sand"], dtype=np.uint8)
    j = judge_image(blank)
    assert j.background == "sand" and j.object_color is None  # no object drawn


def test_names_background():
    assert names_background("a red star on a light blue background", "sky")
    assert names_background("there is a box, and the background is grey", "gray")
    assert not names_background("a red star with white stripes", "white")


def test_bundled_model_is_small_and_samples():
    path = default_model_path()
    assert path.exists(), "the bundled model ships inside the package"
    assert path.stat().st_size < 25 * 2**20
    sampler = Text2ImageSampler.from_pretrained()
    out = sampler(["a big red star on a sky blue background"], seed=0, num_images=2)
    assert len(out.images) == 2 and out.images[0].size == (256, 256)
    assert [im.size for im in (s[0] for s in out.stage_images)] == [(64, 64), (256, 256)]
    again = sampler(["a big red star on a sky blue background"], seed=0, num_images=2)
    assert np.array_equal(np.asarray(out.images[1]), np.asarray(again.images[1]))
    with pytest.raises(ValueError, match="num_images"):
        sampler(["x"], num_images=0)
    # words in no shapes caption (its trained encoder reads any word from its spelling)
    odd = sampler(["a crimsonish glorb-shaped thingamajig on a sky blue background"], seed=0)
    assert odd.images[0].size == (256, 256)
    dim = sampler.cfg.text.dim
    assert sampler.to("cpu").encode_text(["a"]).shape == (1, dim)
    assert isinstance(sampler.generate(torch.zeros(1, dim), ca_noise=False)[-1], torch.Tensor)


def test_sampler_call_takes_generators_latents_noise_and_output_types():
    sampler = Text2ImageSampler.from_pretrained()
    caps = ["a big red star on a sky blue background", "a tiny violet circle on a beige background"]
    pil = sampler(caps, seed=5)
    arr = sampler(caps, seed=5, output_type="np")
    pt = sampler(caps, seed=5, output_type="pt")
    assert arr.images.shape == (2, 256, 256, 3) and arr.images.dtype == np.uint8
    assert pt.images.shape == (2, 3, 256, 256) and pt.stage_images[0].shape[-1] == 64
    assert np.array_equal(np.asarray(pil.images[1]), arr.images[1])
    # for one caption, a torch.Generator seeded like `seed` draws the same noise
    gen = sampler(caps[:1], generator=torch.Generator().manual_seed(5), output_type="np")
    assert np.array_equal(gen.images, sampler(caps[:1], seed=5, output_type="np").images)
    # the same z and CA noise given explicitly: the same images, from any seed (the rule:
    # caption i from its own generator seeded seed + i, z then the CA noise)
    z, eps = [], []
    for i in range(2):
        g = torch.Generator().manual_seed(5 + i)
        z.append(torch.randn(sampler.z_dim, generator=g))
        eps.append(torch.randn(sampler.cond_dim, generator=g))
    given = sampler(
        caps, seed=99, latents=torch.stack(z), ca_noise=torch.stack(eps), output_type="np"
    )
    assert np.array_equal(given.images, arr.images)
    # precomputed embeddings instead of captions; the CA mean alone
    emb = sampler.encode_text(caps)
    same = sampler(text_emb=emb, seed=5, output_type="np")
    assert np.array_equal(same.images, arr.images)
    mean_only = sampler(text_emb=emb, seed=5, ca_noise=False, output_type="pt")
    assert not torch.equal(mean_only.images, pt.images)
    with pytest.raises(ValueError, match="latents must be"):
        sampler(caps, latents=torch.zeros(3, sampler.z_dim))
    with pytest.raises(ValueError, match="output_type"):
        sampler(caps, output_type="jpeg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        sampler(caps, text_emb=emb)


def test_bundled_models_by_name(tmp_path):
    from click.testing import CliRunner

    from stackgan.checkpoint import CheckpointError
    from stackgan.cli import main
    from stackgan.pretrained import PRETRAINED, resolve_model

    assert resolve_model("shapes") == resolve_model(None) == default_model_path()
    assert Text2ImageSampler.from_pretrained("shapes").resolution == 256
    with pytest.raises(CheckpointError, match="unknown model 'ravens': bundled models are birds"):
        Text2ImageSampler.from_pretrained("ravens")
    birds = Text2ImageSampler.from_pretrained("birds")
    assert birds.resolution == 256 and birds.cfg.data.name == "birds"
    out = birds([PRETRAINED["birds"].examples[0]], seed=0)
    assert [im.size for im in out.stage_images[0] + out.stage_images[1]] == [(64, 64), (256, 256)]
    flowers = Text2ImageSampler.from_pretrained("flowers")  # the StackGAN++ tree, 3 branches
    assert flowers.cfg.model.version == "v2" and flowers.cfg.data.name == "flowers"
    out = flowers([PRETRAINED["flowers"].examples[-1]], seed=0)  # an unseen class
    assert [st[0].size for st in out.stage_images] == [(64, 64), (128, 128), (256, 256)]
    # an existing file of that name wins over the bundled one
    (tmp_path / "shapes").write_bytes(b"x")
    assert resolve_model(tmp_path / "shapes") == tmp_path / "shapes"
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0 and all(name in r.output for name in PRETRAINED)
    for card in ("shapes-v1", "birds-v1", "flowers-v2"):
        assert f"docs/models/{card}.md" in r.output
    for m in PRETRAINED.values():  # every bundled model has its card, and the registry's
        assert (Path(__file__).parents[1] / m.card).is_file()  # resolution is the file's
        assert Text2ImageSampler.from_pretrained(m.name).resolution == m.resolution


def test_top_level_export_and_sampler_protocol():
    """``from stackgan import Text2ImageSampler`` works, ``import stackgan`` alone loads no
    torch, and the sampler satisfies the ``Sampler`` protocol the metrics are typed with."""
    import subprocess
    import sys

    import stackgan
    from stackgan.sampling import Sampler

    assert stackgan.Text2ImageSampler is Text2ImageSampler
    assert "Text2ImageSampler" in stackgan.__all__
    with pytest.raises(AttributeError, match="no attribute"):
        _ = stackgan.NoSuchThing  # type: ignore[attr-defined]
    code = "import sys, stackgan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    sampler = Text2ImageSampler.from_pretrained()
    assert isinstance(sampler, Sampler)
    assert not isinstance(object(), Sampler)
