import random

import pytest
import torch

from stackgan.config import ConfigError
from stackgan.data.shapes import write_dataset
from stackgan.text.encoders import dataset_embeddings
from stackgan.text.negatives import (
    COLOR_FAMILIES,
    color_mentions,
    color_swapped_captions,
    swap_color,
)
from stackgan.train import iteration, train

from .conftest import tiny_config

HUE = {w: hue for hue, _, words in COLOR_FAMILIES.values() for w in words}


def _hues(caption):
    return [HUE[m.group(0).lower()] for m in color_mentions(caption)]


def test_swap_changes_one_colour_to_another_hue():
    rng = random.Random(0)
    caption = "a small red star with white stripes on a sky blue background"
    assert _hues(caption) == ["red", "white", "blue"]  # "sky blue" is one phrase, not "blue"
    seen = set()
    for _ in range(200):
        out = swap_color(caption, rng)
        before, after = _hues(caption), _hues(out)
        assert len(after) == len(before)
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(changed) == 1, out  # exactly one mention, always to a different hue
        seen.add(changed[0])
        # everything but the colour (and its article) is kept
        assert out.split()[-1] == "background" and "star" in out
    assert seen == {0, 1, 2}  # each mention gets swapped sometimes


def test_swap_mends_the_article_and_keeps_words_whole():
    rng = random.Random(1)
    outs = {swap_color("A red bird", rng) for _ in range(100)}
    assert "An orange bird" in outs and "A blue bird" in outs
    assert all(not o.startswith(("A o", "An b")) for o in outs)
    # no colour named (and colour words inside other words do not count)
    assert swap_color("a goldfinch in a tangle of reeds", rng) is None
    assert swap_color("", rng) is None


def test_never_a_near_synonym():
    rng = random.Random(2)
    for _ in range(200):
        assert _hues(swap_color("a crimson disk", rng)) != ["red"]
        assert _hues(swap_color("a light blue background", rng)) != ["blue"]


def test_swapped_captions_are_reproducible_and_flag_what_changed():
    caps = ["a red star", "a picture of a cat", "the square is grey"]
    out, ok = color_swapped_captions(caps, seed=3)
    assert ok.tolist() == [True, False, True]
    assert out[1] == caps[1] and out[0] != caps[0] and out[2] != caps[2]
    assert color_swapped_captions(caps, seed=3)[0] == out


def test_swap_variants_cover_several_colours_and_one_variant_is_the_old_swap():
    caps = ["a small red star with white stripes on a sky blue background", "a cat"]
    one, ok1 = color_swapped_captions(caps, seed=5)
    many, ok = color_swapped_captions(caps, seed=5, variants=12)
    assert ok.tolist() == ok1.tolist() == [True, False] and len(many) == 24
    assert many[0] == one[0]  # the first variant is the single swap (same random stream)
    versions = many[:12]
    changed = set()
    for v in versions:
        diff = [i for i, (a, b) in enumerate(zip(_hues(caps[0]), _hues(v))) if a != b]
        assert len(diff) == 1
        changed.add(diff[0])
    assert changed == {0, 1, 2} and len(set(versions)) > 6  # all mentions, many colours
    assert many[12:] == ["a cat"] * 12  # nothing to swap: the caption itself, flagged not ok
    with pytest.raises(ValueError, match="variants"):
        color_swapped_captions(caps, variants=0)


def _swap_variants_fed_to_d(tiny_shapes, run, monkeypatch, variants, iters):
    """Train with every wrong caption a colour swap; for each (right, wrong) pair D saw, which
    of the right caption's swapped versions the wrong one is (an assertion error if none)."""
    seen = []
    real_d_step = iteration.d_step

    def spy(d, opt, real, fake, text, wrong, **kw):
        seen.append((text.clone(), wrong.clone()))
        return real_d_step(d, opt, real, fake, text, wrong, **kw)

    monkeypatch.setattr(iteration, "d_step", spy)
    extra = {"loss.swap_negatives": 1.0, "loss.swap_variants": variants}
    cfg = tiny_config(tiny_shapes, **extra, **{"train.total_iters": iters})
    train(cfg, run)
    assert "colour-swapped negatives" in (run / "log.txt").read_text()

    from stackgan.data.dataset import TextImageDataset

    ds = TextImageDataset(tiny_shapes, "train", 16, progress=False)
    emb = dataset_embeddings(ds.captions, "minilm", ds.cache_dir, progress=False)
    swapped, ok = color_swapped_captions(ds.captions, seed=cfg.train.seed, variants=variants)
    assert ok.all()  # every shapes caption names the object's colour
    swap_emb = dataset_embeddings(swapped, "minilm", ds.cache_dir, progress=False)
    assert len(seen) == iters
    used = []
    for text, wrong in seen:
        for t, w in zip(text, wrong, strict=True):
            rows = (emb == t).all(dim=1).nonzero()[:, 0]  # the right caption (or a duplicate)
            assert len(rows) > 0
            hits = [variants * int(r) + j for r in rows for j in range(variants)]
            match = [h for h in hits if torch.equal(swap_emb[h], w)]
            assert match  # one of its own caption's colour-swapped versions
            used.append(match[0] % variants)
    return used


def test_training_feeds_d_the_swapped_captions(tiny_shapes, tmp_path, monkeypatch):
    assert _swap_variants_fed_to_d(tiny_shapes, tmp_path / "run", monkeypatch, 1, 2)


def test_training_draws_among_the_swap_variants(tiny_shapes, tmp_path, monkeypatch):
    used = _swap_variants_fed_to_d(tiny_shapes, tmp_path / "run", monkeypatch, 4, 6)
    assert len(set(used)) > 1  # not always the same version


def test_swap_negatives_errors(tiny_shapes, tmp_path):
    with pytest.raises(ConfigError, match="swap_variants"):
        tiny_config(tiny_shapes, **{"loss.swap_variants": 0})
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="swap_negatives"):
            tiny_config(tiny_shapes, **{"loss.swap_negatives": bad})
    with pytest.raises(ConfigError, match=r"swap_negatives.*precomputed"):
        tiny_config(tiny_shapes, **{"loss.swap_negatives": 0.5, "text.encoder": "precomputed"})
    # a dataset whose captions name no colour has nothing to swap: said before training starts
    root = write_dataset(tmp_path / "s", 4, seed=0, size=64, progress=False)
    for f in (root / "text").rglob("*.txt"):
        f.write_text("\n".join(["a shape in a picture"] * 10) + "\n")
    cfg = tiny_config(root, **{"loss.swap_negatives": 0.5})
    with pytest.raises(ConfigError, match="names a colour"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint-latest.pt").exists()


def test_british_spellings_remain_as_aliases():
    from stackgan.text import negatives

    assert negatives.colour_swapped_captions is color_swapped_captions
    assert negatives.swap_colour is swap_color and negatives.COLOUR_FAMILIES is COLOR_FAMILIES
