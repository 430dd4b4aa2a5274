"""data/packed.py and `stackgan data pack`: one file that trains like the dataset folder."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stackgan.cli import main
from stackgan.data.dataset import TextImageDataset
from stackgan.data.io import DatasetError
from stackgan.data.packed import pack_dataset, read_pack_meta
from stackgan.train import train

from .conftest import tiny_config


@pytest.fixture(scope="module")
def packs(tiny_shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("packs")
    return {
        fmt: pack_dataset(
            tiny_shapes, out / f"s-{fmt}.pack", [16, 32], image_format=fmt, progress=False
        )
        and out / f"s-{fmt}.pack"
        for fmt in ("raw", "png", "jpeg")
    }


@pytest.mark.parametrize("fmt", ["raw", "png"])
def test_packed_and_unpacked_give_identical_batches(tiny_shapes, packs, fmt, tmp_path):
    kw = {"random_crop": False, "random_flip": True, "progress": False}
    folder = TextImageDataset(tiny_shapes, "train", 32, cache_dir=tmp_path / "c", **kw)
    packed = TextImageDataset(packs[fmt], "train", 32, cache_dir=tmp_path / "p", **kw)
    assert packed.keys == folder.keys and packed.captions == folder.captions
    assert torch.equal(packed.class_ids, folder.class_ids)
    assert torch.equal(packed.images, folder.images)
    idx = torch.arange(8)
    a = folder.sample(idx, [16, 32], torch.Generator().manual_seed(3))
    b = packed.sample(idx, [16, 32], torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    assert torch.equal(a.caption_idx, b.caption_idx)
    assert torch.equal(a.wrong_caption_idx, b.wrong_caption_idx)


def test_jpeg_pack_keeps_everything_but_exact_pixels(tiny_shapes, packs, tmp_path):
    folder = TextImageDataset(tiny_shapes, "test", 32, random_crop=False, progress=False)
    packed = TextImageDataset(packs["jpeg"], "test", 32, random_crop=False, progress=False)
    assert packed.keys == folder.keys and packed.captions == folder.captions
    diff = (packed.images.float() - folder.images.float()).abs().mean()
    assert 0 < diff < 4  # lossy, but close (mean absolute error in 0..255)


def test_training_reads_a_pack(tiny_shapes, packs, tmp_path):
    cfg = tiny_config(tiny_shapes, **{"data.root": str(packs["raw"]), "train.total_iters": 2})
    export = train(cfg, tmp_path / "run")
    assert export.is_file()


def test_pack_errors_are_clear(tiny_shapes, packs, tmp_path):
    with pytest.raises(DatasetError, match=r"holds 16px, 32px images; this config reads 64px"):
        TextImageDataset(packs["raw"], "train", 64, random_crop=False, progress=False)
    bad = tmp_path / "bad.pack"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable stackgan pack"):
        TextImageDataset(bad, "train", 32, random_crop=False, progress=False)
    other = tmp_path / "other.pack"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("meta.json", json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetError, match="not a stackgan pack"):
        read_pack_meta(other)
    with pytest.raises(DatasetError, match=r"ends in \.pack"):
        pack_dataset(tiny_shapes, tmp_path / "x.zip", [16], progress=False)


def test_pack_command(tiny_shapes, tmp_path):
    out = tmp_path / "s.pack"
    r = CliRunner().invoke(
        main,
        ["data", "pack", str(tiny_shapes), "--out", str(out), "--sizes", "16", "--format", "png"],
    )
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "png at [16] px" in r.output
    meta = read_pack_meta(out)
    assert set(meta["splits"]) == {"train", "test"} and meta["sizes"] == [16]
    assert np.array_equal(
        TextImageDataset(out, "test", 16, random_crop=False, progress=False).images.numpy(),
        TextImageDataset(tiny_shapes, "test", 16, random_crop=False, progress=False).images.numpy(),
    )


def test_a_dataset_error_while_packing_is_not_called_a_write_error(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        pack_dataset(tmp_path / "missing", tmp_path / "x.pack", [16], progress=False)
    assert not list(tmp_path.glob("*.pack*")) and not list(tmp_path.glob(".x.pack*"))
