"""Decompression bombs in zips (state dicts, checkpoints, packs), images in formats the project
does not read, and links leaving the dataset folder (issue 31, points 4, 5 and 6)."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile

import pytest
from PIL import EpsImagePlugin, Image

from stackgan.checkpoint import CheckpointError, load_checkpoint
from stackgan.convert import ConvertError, read_state_dict
from stackgan.data.io import DatasetError
from stackgan.data.packed import pack_dataset, read_pack_meta
from stackgan.utils.images import ImageFileError, open_image

from .bounds import assert_one_line, bounded, cli

ZEROS = 32 << 20  # deflates to ~32 KB: a 1000x bomb, small enough to build in a test


def _bomb(path, name="archive/data/0"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
        zf.writestr(name, bytes(ZEROS))
    return path


def test_zip_bombs_are_refused_from_their_declared_sizes(tmp_path):
    bomb = _bomb(tmp_path / "netG.pth")
    assert bomb.stat().st_size < 100_000
    with bounded(max_mb=50), pytest.raises(ConvertError, match="decompression bomb"):
        read_state_dict(bomb)  # was 3.1 GB for a 1 MB zip
    r = cli("convert", str(bomb), "--out", str(tmp_path / "m.safetensors"))
    assert_one_line(r, "decompression bomb")
    assert not (tmp_path / "m.safetensors").exists()
    ckpt = _bomb(tmp_path / "checkpoint-latest.pt")
    with bounded(max_mb=50), pytest.raises(CheckpointError, match="decompression bomb"):
        load_checkpoint(ckpt)


def _pack(tiny_shapes, tmp_path):
    out = tmp_path / "d.pack"
    pack_dataset(tiny_shapes, out, sizes=(16,), splits=("test",), progress=False)
    return out


def _rewrite_meta(pack, meta_bytes, compress=zipfile.ZIP_STORED):
    out = pack.with_name("crafted.pack")
    with zipfile.ZipFile(pack) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != "meta.json":
                dst.writestr(info, src.read(info))
        dst.writestr("meta.json", meta_bytes, compress_type=compress)
    return out


def test_pack_meta_json_bomb_and_wrong_types(tiny_shapes, tmp_path):
    pack = _pack(tiny_shapes, tmp_path)
    good = json.loads(zipfile.ZipFile(pack).read("meta.json"))
    whitespace = b"{" + b" " * (64 << 20) + b"}"  # was 2.3 GB for a 2.5 MB pack
    bomb = _rewrite_meta(pack, whitespace, zipfile.ZIP_DEFLATED)
    with bounded(max_mb=50), pytest.raises(DatasetError, match="inflate"):
        read_pack_meta(bomb)
    cases = {
        "sizes": ("sizes", "oops"),
        "image_format": ("image_format", ["raw"]),
        "version": ("version", "1"),
        "splits.test.keys": ("splits", {"test": {**good["splits"]["test"], "keys": [1, 2]}}),
        "splits.test.class_ids": (
            "splits",
            {"test": {**good["splits"]["test"], "class_ids": [1.5] * 3}},
        ),
        "splits.test.captions": ("splits", {"test": {**good["splits"]["test"], "captions": 7}}),
    }
    for field, (key, value) in cases.items():
        crafted = _rewrite_meta(pack, json.dumps({**good, key: value}).encode())
        with pytest.raises(DatasetError, match=f"field {field}"):
            read_pack_meta(crafted)
    deep = _rewrite_meta(pack, b"[" * 100_000 + b"]" * 100_000)
    with bounded(), pytest.raises(DatasetError, match="not a readable stackgan pack"):
        read_pack_meta(deep)


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
    b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"
)


def test_only_jpeg_and_png_are_opened(tiny_shapes, tmp_path, monkeypatch):
    def no_ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript must never be started")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "/bin/false", raising=False)
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(EPS)
    with Image.open(fake) as im:  # the fixture is real: unrestricted PIL takes it as EPS
        assert im.format == "EPS"
    with pytest.raises(ImageFileError, match="not a JPEG or PNG"):
        open_image(fake)
    root = tmp_path / "shapes"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    victim = sorted((root / "CUB_200_2011" / "images").rglob("*.png"))[0]
    victim.write_bytes(EPS)
    r = cli("data", "check", str(root))
    assert "not a JPEG or PNG" in r.output and "Traceback" not in r.output


def test_links_leaving_the_dataset_folder_are_not_read(tiny_shapes, tmp_path):
    root = tmp_path / "shapes"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    caption = sorted((root / "text").rglob("*.txt"))[0]
    caption.unlink()
    caption.symlink_to(secret)  # was read as captions by `data check` and `data pack`
    r = cli("data", "check", str(root))
    assert "outside the dataset folder" in r.output and str(caption) in r.output
    r = cli("data", "pack", str(root), "--out", str(tmp_path / "x.pack"), "--sizes", "16")
    assert_one_line(r, "outside the dataset folder")
    assert not (tmp_path / "x.pack").exists()
    # a dataset folder that is itself a link is fine: only what leaves it is refused
    (tmp_path / "alias").symlink_to(root)
    caption.unlink()
    caption.write_text("a red square\n")
    r = cli("data", "check", str(tmp_path / "alias"))
    assert r.exit_code == 0, r.output
