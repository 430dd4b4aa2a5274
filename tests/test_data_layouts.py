"""Dataset layouts (Oxford-102 flowers, COCO 2014, a generic folder) on fixtures generated in
exactly those layouts, and ``stackgan data check``."""

import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stackgan.cli import main
from stackgan.data.check import check_dataset
from stackgan.data.dataset import TextImageDataset
from stackgan.data.io import DatasetError
from stackgan.data.layouts import detect_layout, read_index


def _img(path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the originals are Python 2 pickles


def make_flowers(root):
    """jpg/image_XXXXX.jpg, text_c10/class_XXXXX/image_XXXXX.txt, split pickles."""
    spec = {"train": [(1, 1), (2, 1), (3, 2), (4, 2)], "test": [(5, 3), (6, 3)]}
    for split, items in spec.items():
        keys = []
        for num, cls in items:
            name = f"image_{num:05d}"
            _img(root / "jpg" / f"{name}.jpg", (40 * num, 0, 0))
            txt = root / "text_c10" / f"class_{cls:05d}" / f"{name}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("".join(f"flower {num} caption {i}\n" for i in range(10)))
            keys.append(f"jpg/{name}")
        _pickle(root / split / "filenames.pickle", keys)
    return root


def make_coco(root):
    """annotations/captions_{train,val}2014.json with train2014/ and val2014/."""
    for year, ids in (("train2014", [9, 3, 5]), ("val2014", [42, 7])):
        images, anns = [], []
        for i in ids:
            name = f"COCO_{year}_{i:012d}.jpg"
            _img(root / year / name, (i * 5, 100, 50), size=(64, 48))
            images.append({"id": i, "file_name": name, "width": 64, "height": 48})
            anns += [
                {"id": i * 10 + k, "image_id": i, "caption": f"photo {i} #{k}"} for k in range(5)
            ]
        images.append({"id": 999, "file_name": f"COCO_{year}_000000000999.jpg"})  # no captions
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{year}.json").write_text(
            json.dumps({"images": images, "annotations": anns})
        )
    return root


def make_folder(root, n=12):
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        _img(sub / f"pic{i:02d}.png", (i * 20, 0, 255 - i * 20))
        (sub / f"pic{i:02d}.txt").write_text(f"picture number {i}\nanother caption {i}\n")
    return root


def test_detect_layout(tmp_path, tiny_shapes):
    assert detect_layout(tiny_shapes) == "cub"
    assert detect_layout(make_flowers(tmp_path / "f")) == "flowers"
    assert detect_layout(make_coco(tmp_path / "c")) == "coco"
    assert detect_layout(make_folder(tmp_path / "g")) == "folder"


def test_flowers_layout(tmp_path):
    root = make_flowers(tmp_path / "flowers")
    idx = read_index(root, "train")
    assert idx.keys == [f"jpg/image_{n:05d}" for n in (1, 2, 3, 4)]
    assert idx.class_ids == [1, 1, 2, 2]  # from the class_XXXXX folders
    assert len(idx.captions[0]) == 10 and idx.captions[2][0] == "flower 3 caption 0"
    ds = TextImageDataset(root, "train", 16, random_crop=False, random_flip=False, progress=False)
    assert ds.images.shape == (4, 16, 16, 3) and ds.num_captions == 40
    assert int(ds.images[2, 8, 8, 0]) == 120  # image_00003 is (120, 0, 0)
    # mismatched captions come from another class
    other = ds.mismatched(torch.arange(4), torch.Generator().manual_seed(0))
    assert (ds.class_ids[other] != ds.class_ids[torch.arange(4)]).all()


def test_coco_layout(tmp_path):
    root = make_coco(tmp_path / "coco")
    train, test = read_index(root, "train"), read_index(root, "test")
    assert train.keys == [f"train2014/COCO_train2014_{i:012d}" for i in (3, 5, 9)]  # by id
    assert [len(c) for c in train.captions] == [5, 5, 5] and train.class_ids is None
    assert test.keys[0].startswith("val2014/") and len(test.keys) == 2
    ds = TextImageDataset(root, "test", 16, random_crop=False, progress=False)
    assert ds.images.shape == (2, 16, 16, 3) and not ds.has_classes
    with pytest.raises(DatasetError, match="train and test"):
        read_index(root, "val")


def test_generic_folder_layout(tmp_path):
    root = make_folder(tmp_path / "mine")
    train, test = read_index(root, "train"), read_index(root, "test")
    assert len(train.keys) + len(test.keys) == 12 and len(test.keys) == 2  # every 10th is test
    assert not set(train.keys) & set(test.keys)
    assert train.keys[0] == "a/pic03"  # sorted; a/pic01 is the first test image
    assert train.captions[0] == ["picture number 3", "another caption 3"]
    (root / "test.txt").write_text("a/pic01.png\nb/pic02.png\n")  # explicit split files win
    assert read_index(root, "test").keys == ["a/pic01", "b/pic02"]


def test_missing_caption_and_image_are_clear_errors(tmp_path):
    root = make_flowers(tmp_path / "flowers")
    (root / "jpg" / "image_00002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"missing image: .*image_00002\.jpg"):
        read_index(root, "train")
    root = make_folder(tmp_path / "mine")
    (root / "a" / "pic03.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing caption file: .*pic03\.txt"):
        read_index(root, "train")


def test_data_check_lists_every_problem_by_path(tmp_path):
    root = make_folder(tmp_path / "mine")
    (root / "a" / "pic03.txt").unlink()  # uncaptioned
    (root / "b" / "pic04.txt").write_text("\n\n")  # empty caption file
    (root / "a" / "pic05.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # corrupt
    layout, reports = check_dataset(root, progress=False)
    problems = [p for r in reports for p in r.problems]
    assert layout == "folder"
    assert any("missing caption file" in p and "pic03.txt" in p for p in problems)
    assert any("no captions" in p and "pic04.txt" in p for p in problems)
    assert any(p.startswith("unreadable image") and "pic05.png" in p for p in problems)
    assert len(problems) == 3
    res = CliRunner().invoke(main, ["data", "check", str(root)])
    assert res.exit_code == 1 and "pic05.png" in res.output and "folder layout" in res.output


def test_data_check_coco_and_a_clean_dataset(tmp_path, tiny_shapes):
    _, reports = check_dataset(make_coco(tmp_path / "coco"), progress=False)
    assert [r.num_images for r in reports] == [3, 2]
    assert all(any("without captions" in p for p in r.problems) for r in reports)
    res = CliRunner().invoke(main, ["data", "check", str(tiny_shapes)])
    assert res.exit_code == 0, res.output
    assert "no problems found" in res.output


def test_data_check_missing_split_file(tmp_path):
    root = make_flowers(tmp_path / "flowers")
    (root / "test" / "filenames.pickle").unlink()
    _, reports = check_dataset(root, progress=False)
    assert reports[0].problems == [] and "missing split file" in reports[1].problems[0]
    assert np.sum([r.num_images for r in reports]) == 4
