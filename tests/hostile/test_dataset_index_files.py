"""Damaged or crafted index files of a dataset folder (issue 31, the dataset items of points 10
and 12): images.txt, bounding boxes, class labels and COCO annotations each give one error
naming the file and the entry."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from stackgan.data.io import DatasetError
from stackgan.data.layouts import read_index

from .bounds import assert_one_line, bounded, cli


@pytest.fixture
def shapes(tiny_shapes, tmp_path):
    root = tmp_path / "shapes"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    return root


def test_images_txt(shapes, tmp_path):
    index = shapes / "CUB_200_2011" / "images.txt"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([*lines[:2], "3", *lines[3:]]) + "\n")  # a one-word line
    with pytest.raises(DatasetError, match=r"images.txt line 3: expected '<id> <image path>'"):
        read_index(shapes, "train")
    r = cli("data", "pack", str(shapes), "--out", str(tmp_path / "x.pack"), "--sizes", "16")
    assert_one_line(r, "line 3")
    index.write_bytes("\n".join(lines).encode() + b"\n4 caf\xe9.png\n")
    r = cli("data", "pack", str(shapes), "--out", str(tmp_path / "x.pack"), "--sizes", "16")
    assert_one_line(r, "is not UTF-8 text")


@pytest.mark.parametrize("box", ["inf 0 10 10", "0 0 nan 10", "-5 0 10 10", "0 0 0 10"])
def test_bounding_boxes_must_be_finite_and_positive(shapes, box):
    (shapes / "CUB_200_2011" / "bounding_boxes.txt").write_text(f"1 {box}\n")
    # was: passed `data check`, then an OverflowError in training
    with pytest.raises(DatasetError, match=r"line 1: bounding box .* must be finite"):
        read_index(shapes, "train")


@pytest.mark.parametrize("bad", [float("inf"), None, "7", 2.5, 2**70])
def test_class_labels_must_be_whole_numbers(shapes, bad):
    path = shapes / "train" / "class_info.pickle"
    with open(path, "rb") as f:
        labels = list(pickle.load(f))
    labels[1] = bad
    path.write_bytes(pickle.dumps(labels, protocol=2))
    with pytest.raises(DatasetError, match=r"class id 1 is .*not a whole number"):
        read_index(shapes, "train")


def _coco(tmp_path, ann):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2014").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train2014" / "a.jpg")
    path = root / "annotations" / "captions_train2014.json"
    path.write_bytes(ann if isinstance(ann, bytes) else json.dumps(ann).encode())
    return root


GOOD = {
    "images": [{"id": 1, "file_name": "a.jpg"}],
    "annotations": [{"image_id": 1, "caption": "a black square"}],
}


@pytest.mark.parametrize(
    ("ann", "match"),
    [
        ({**GOOD, "annotations": [{"caption": "x"}]}, "annotation 0 has no image_id"),
        ({**GOOD, "images": [{"id": 1}]}, "image 0 needs an id and a file_name"),
        ([GOOD], "expected a COCO annotation object"),
        ({**GOOD, "images": [{"id": None, "file_name": "a.jpg"}]}, "image 0's id is 'None'"),
        ({**GOOD, "images": [{"id": 2**64, "file_name": "a.jpg"}]}, r"not an id in 0\.\.2\^63-1"),
        ({**GOOD, "annotations": [{"image_id": -1, "caption": "x"}]}, "not an id"),
        ({**GOOD, "images": [{"id": 1, "file_name": 5}]}, "file_name is not a file name"),
        ({**GOOD, "deep": json.loads("[" * 200 + "]" * 200)}, "expected a COCO annotation"),
        (b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"images": [{"id": 1, "file_name": "caf\xe9.jpg"}]}', "is not UTF-8 text"),
    ],
)
def test_coco_annotations(tmp_path, ann, match):
    root = _coco(tmp_path, ann)
    with bounded(), pytest.raises(DatasetError, match=match):
        read_index(root, "train")


def test_coco_good_file_reads_and_cli_is_one_line(tmp_path):
    assert read_index(_coco(tmp_path / "ok", GOOD), "train").captions == [["a black square"]]
    root = _coco(tmp_path, [GOOD])
    r = cli("data", "pack", str(root), "--out", str(tmp_path / "x.pack"), "--sizes", "16")
    assert_one_line(r, "expected a COCO annotation object")
