import json
import pickle
import random

import numpy as np
import pytest

from stackgan.data import shapes


def _attrs(**kw):
    base = dict(
        shape="square",
        color="red",
        size="medium",
        position="center",
        pattern="solid",
        pattern_color=None,
        background="sky",
    )
    base.update(kw)
    return shapes.ShapeAttributes(**base)


def test_render_exact_palette_and_size():
    img = shapes.render(_attrs(), 256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert tuple(img[128, 128]) == shapes.OBJECT_PALETTE["red"]
    assert tuple(img[2, 2]) == shapes.BACKGROUND_PALETTE["sky"]
    # medium = about 45% of the canvas
    side = (np.abs(img.astype(int) - shapes.OBJECT_PALETTE["red"]).sum(-1) < 5)[128].sum()
    assert abs(side / 256 - 0.45) < 0.02


@pytest.mark.parametrize("shape", shapes.SHAPES)
@pytest.mark.parametrize("pos", list(shapes.POSITIONS))
def test_positions_and_shapes(shape, pos):
    img = shapes.render(_attrs(shape=shape, size="small", position=pos), 256).astype(int)
    mask = np.abs(img - shapes.BACKGROUND_PALETTE["sky"]).sum(-1) > 30
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.min() + xs.max()) / 2 / 256, (ys.min() + ys.max()) / 2 / 256
    ex, ey = shapes.POSITIONS[pos]
    assert abs(cx - ex) < 0.03 and abs(cy - ey) < 0.03


def test_lower_resolutions_are_area_downsampled_from_256():
    a = _attrs(pattern="striped", pattern_color="white", position="left")
    big = shapes.render(a, 256).astype(np.float32)
    small = shapes.render(a, 64).astype(np.float32)
    ref = big.reshape(64, 4, 64, 4, 3).mean((1, 3))
    assert np.abs(ref - small).max() <= 1.0


def test_pattern_is_a_high_resolution_detail():
    a = _attrs(size="large", pattern="striped", pattern_color="white")
    big = shapes.render(a, 256).astype(np.float32)
    small = shapes.render(a, 32).astype(np.float32)
    # spatial variation inside the object, per channel
    var_big = big[100:156, 100:156].std(axis=(0, 1)).mean()
    var_small = small[13:19, 13:19].std(axis=(0, 1)).mean()
    assert var_big > 30 and var_small < var_big / 3


def test_attribute_rules():
    rng = random.Random(0)
    for _ in range(2000):
        a = shapes.sample_attributes(rng)
        if a.size == "large":
            assert a.position == "center"
        assert a.background != a.color
        assert (a.pattern == "solid") == (a.pattern_color is None)
        assert a.pattern_color != a.color


def test_captions_name_shape_and_color_with_synonyms():
    rng = random.Random(0)
    seen_templates = set()
    for _ in range(500):
        a = shapes.sample_attributes(rng)
        c = shapes.caption(a, rng)
        assert any(w in c for w in shapes.SHAPE_WORDS[a.shape]), c
        assert any(w in c for w in shapes.COLOR_WORDS[a.color]), c
        seen_templates.add(c.split()[0])
    assert len(seen_templates) >= 4  # several templates, not one
    assert shapes._article("orange star") == "an orange star"
    assert shapes._article("huge star") == "a huge star"
    caps = [shapes.caption(_attrs(color="orange"), random.Random(i)) for i in range(50)]
    assert not any("a orange" in c for c in caps)


def test_written_dataset_layout_and_compositional_split(tiny_shapes):
    root = tiny_shapes
    meta = json.loads((root / "meta.json").read_text())
    assert meta["spec_version"] == shapes.SPEC_VERSION and len(meta["heldout_pairs"]) >= 5
    held = {tuple(p) for p in meta["heldout_pairs"]}
    attrs = shapes.load_attributes(root)
    with open(root / "train" / "filenames.pickle", "rb") as f:
        train = pickle.load(f)
    with open(root / "test" / "filenames.pickle", "rb") as f:
        test = pickle.load(f)
    assert len(train) + len(test) == 60
    assert not {(attrs[k].shape, attrs[k].color) for k in train} & held
    for k in train[:5]:
        assert (root / "CUB_200_2011" / "images" / f"{k}.png").exists()
        assert len((root / "text" / f"{k}.txt").read_text().splitlines()) == 10


def test_generation_is_deterministic_and_every_shape_color_stays_in_training():
    a = [(k, at, c) for k, at, c, _ in shapes.iter_dataset(30, seed=5)]
    b = [(k, at, c) for k, at, c, _ in shapes.iter_dataset(30, seed=5)]
    assert a == b
    held = shapes.heldout_pairs(5)
    assert len({s for s, _ in held}) == 5 and len({c for _, c in held}) == 5


def test_write_refuses_to_clobber(tmp_path):
    out = tmp_path / "s"
    shapes.write_dataset(out, 3, size=32, progress=False)
    with pytest.raises(FileExistsError):
        shapes.write_dataset(out, 3, size=32, progress=False)
    assert (out / "meta.json").exists()  # the existing dataset is untouched
