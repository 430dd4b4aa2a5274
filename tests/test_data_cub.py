import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from stackgan.data.dataset import TextImageDataset
from stackgan.data.io import DatasetError, bbox_crop_box, load_image

from .conftest import BIRDS


def test_bbox_crop_box_matches_reference_formula():
    # box (x=100, y=50, w=80, h=40) in a 500x300 image: r = int(0.75 * 80) = 60, centre (140, 70)
    assert bbox_crop_box((100, 50, 80, 40), 500, 300) == (80, 10, 200, 130)
    # clipped at the borders
    assert bbox_crop_box((0, 0, 100, 100), 120, 120) == (0, 0, 120, 120)


def test_shapes_loads_through_the_cub_loader(tiny_shapes, tmp_path):
    ds = TextImageDataset(
        tiny_shapes,
        "train",
        32,
        random_crop=False,
        random_flip=False,
        cache_dir=tmp_path,
        progress=False,
    )
    assert ds.images.shape == (len(ds), 32, 32, 3) and ds.images.dtype == torch.uint8
    assert ds.num_captions == 10 * len(ds)
    idx = torch.arange(4)
    batch = ds.sample(idx, [16, 32], torch.Generator().manual_seed(0))
    assert [tuple(x.shape) for x in batch.images] == [(4, 3, 16, 16), (4, 3, 32, 32)]
    assert batch.images[-1].min() >= -1 and batch.images[-1].max() <= 1
    # each caption belongs to its image; each wrong caption to an image of another class
    for i, ci, wi in zip(idx, batch.caption_idx, batch.wrong_caption_idx):
        lo = ds.caption_offsets[i]
        assert lo <= ci < lo + ds.caption_counts[i]
        owner = int(torch.searchsorted(ds.caption_offsets, wi, right=True)) - 1
        assert ds.class_ids[owner] != ds.class_ids[i]
    # a second load reads the cache
    ds2 = TextImageDataset(
        tiny_shapes,
        "train",
        32,
        random_crop=False,
        random_flip=False,
        cache_dir=tmp_path,
        progress=False,
    )
    assert torch.equal(ds.images, ds2.images)


def test_random_crop_and_flip(tiny_shapes, tmp_path):
    ds = TextImageDataset(
        tiny_shapes,
        "train",
        32,
        random_crop=True,
        random_flip=True,
        cache_dir=tmp_path,
        progress=False,
    )
    assert ds.load_size == 38  # 76/64 of 32
    a = ds.images_at(torch.zeros(16, dtype=torch.long), [32], torch.Generator().manual_seed(0))[0]
    assert a.shape == (16, 3, 32, 32)
    assert not all(torch.equal(a[0], a[i]) for i in range(1, 16))  # crops/flips differ


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".stackgan-cache"))
    return dst


def test_missing_folder_and_split():
    with pytest.raises(DatasetError, match="dataset folder not found"):
        TextImageDataset("/no/such/dataset", progress=False)


def test_missing_caption_file_is_named(tiny_shapes, tmp_path):
    root = _copy(tiny_shapes, tmp_path / "d")
    with open(root / "train" / "filenames.pickle", "rb") as f:
        key = pickle.load(f)[0]
    (root / "text" / f"{key}.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing caption file: .*" + key.split("/")[1]):
        TextImageDataset(root, "train", 16, cache_dir=tmp_path / "c", progress=False)


def test_corrupt_image_is_named(tiny_shapes, tmp_path):
    root = _copy(tiny_shapes, tmp_path / "d")
    with open(root / "train" / "filenames.pickle", "rb") as f:
        key = pickle.load(f)[3]
    (root / "CUB_200_2011" / "images" / f"{key}.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"corrupt or unreadable image: .*" + key.split("/")[1]):
        TextImageDataset(root, "train", 16, cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").glob("*.npy"))  # no half-written cache left behind


def test_load_image_bbox_crop(tmp_path):
    arr = np.zeros((200, 300, 3), dtype=np.uint8)
    arr[80:120, 130:170] = 255  # a white box centred at (150, 100)
    Image.fromarray(arr).save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", 60, (130, 80, 40, 40))
    # crop is 60x60 px around the box (r = 30) -> the box fills the centre 2/3 of the output
    assert out.shape == (60, 60, 3)
    assert out[30, 30].min() > 200 and out[2, 2].max() < 50


@pytest.mark.skipif(not BIRDS.exists(), reason="../shared/data/birds-cub50 not present")
def test_birds_cub50(tmp_path):
    ds = TextImageDataset(BIRDS, "test", 64, max_images=12, cache_dir=tmp_path, progress=False)
    assert ds.bbox_crop and ds.has_classes
    assert ds.images.shape == (12, 76, 76, 3)
    assert len(ds.captions) >= 12 * 5
    # the crop lands on the bird: the bbox crop of image 0 equals what load_image gives
    idx = torch.arange(12)
    b = ds.sample(idx, [64], torch.Generator().manual_seed(0))
    assert b.images[0].shape == (12, 3, 64, 64)
    boxes = ds.bboxes
    path = ds.image_paths[0]
    with Image.open(path) as im:
        w, h = im.size
    x1, y1, x2, y2 = bbox_crop_box(boxes[ds.keys[0]], w, h)
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert np.array_equal(ds.images[0].numpy(), load_image(path, 76, boxes[ds.keys[0]]))
    # a real pickle written by Python 2: keys look like "<class>/<name>"
    assert "/" in ds.keys[0]


def test_hard_wrong_captions_pick_the_most_similar_other_class_caption(tiny_shapes, tmp_path):
    ds = TextImageDataset(
        tiny_shapes,
        "train",
        16,
        random_crop=False,
        random_flip=False,
        cache_dir=tmp_path,
        progress=False,
    )
    emb = torch.randn(ds.num_captions, 12, generator=torch.Generator().manual_seed(0))
    idx = torch.arange(6)
    caps = ds.random_captions(idx, torch.Generator().manual_seed(1))
    k = 5
    hard = ds.hard_wrong_captions(idx, caps, emb, k, torch.Generator().manual_seed(2))
    # the same draws, redone by hand: K mismatched captions per image, the most cosine-similar
    gen = torch.Generator().manual_seed(2)
    cand = ds.random_captions(ds.mismatched(idx.repeat_interleave(k), gen), gen).view(6, k)
    sims = torch.nn.functional.cosine_similarity(emb[caps][:, None], emb[cand], dim=-1)
    assert torch.equal(hard, cand[torch.arange(6), sims.argmax(1)])
    for i, wi in zip(idx, hard):
        owner = int(torch.searchsorted(ds.caption_offsets, wi, right=True)) - 1
        assert ds.class_ids[owner] != ds.class_ids[i]
    # more candidates never give a less similar negative than one random draw on average
    one = ds.hard_wrong_captions(idx, caps, emb, 1, torch.Generator().manual_seed(2))
    sim = lambda w: torch.nn.functional.cosine_similarity(emb[caps], emb[w], dim=-1)  # noqa: E731
    many = ds.hard_wrong_captions(idx, caps, emb, 32, torch.Generator().manual_seed(2))
    assert sim(many).mean() > sim(one).mean()


def test_cache_location(tmp_path, monkeypatch):
    from stackgan.data.io import default_cache_dir

    monkeypatch.delenv("STACKGAN_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    assert default_cache_dir(data) == data / ".stackgan-cache"
    data.chmod(0o555)  # read-only, even if we are root: the per-user cache
    try:
        ro = default_cache_dir(data)
    finally:
        data.chmod(0o755)
    assert ro.parent == tmp_path / "home" / ".cache" / "stackgan" and ro.name.startswith("data-")
    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir(data).parent == tmp_path / "c"
