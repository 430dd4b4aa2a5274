"""Crafted ``.t7`` and ``.npy`` sentence-vector files (issue 31, point 1 and the .npy header of
point 10): every one is a one-line error, read within the bytes present."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from stackgan.text.torch7 import Torch7Error, load_sentence_vectors, load_t7, load_t7_embeddings

from ..test_text_torch7 import _Writer
from .bounds import assert_one_line, bounded, cli

FLOATS = [float(i) for i in range(8)]


def _tensor_file(tmp_path, sizes, strides, offset=1, storage=FLOATS):
    w = _Writer()
    w.table([("fea_txt", lambda w: w.tensor(storage, "Float", "f", sizes, strides, offset))])
    path = tmp_path / "x.t7"
    path.write_bytes(bytes(w.buf))
    return path


@pytest.mark.parametrize(
    ("sizes", "strides", "offset", "match"),
    [
        ([2, 4], [-4, 1], 1, "negative stride"),  # was SIGSEGV
        ([1, 500], [1, 1], 1, "past its storage"),  # was ~500 floats of heap memory
        ([4, 1024], [4, 1], 1, "past its storage"),  # a short row stride: overlapping rows
        ([100_000, 1024], [0, 0], 1, "zero or negative stride"),  # was 1 KB -> 2.2 GB
        ([2, 4], [4, 1], -5, "negative size or offset"),
        ([-2, 4], [4, 1], 1, "negative size"),
    ],
)
def test_crafted_strides_sizes_and_offsets(tmp_path, sizes, strides, offset, match):
    path = _tensor_file(tmp_path, sizes, strides, offset)
    with bounded(), pytest.raises(Torch7Error, match=match):
        load_t7_embeddings(path)


def test_a_valid_strided_tensor_still_reads(tmp_path):
    path = _tensor_file(tmp_path, [2, 4], [4, 1])
    _, emb = load_t7_embeddings(path)
    assert emb.shape == (2, 4) and emb[1, 0] == 4.0


@pytest.mark.parametrize("claimed", [2**62, 2**34, -1])
def test_storage_sizes_past_the_file(tmp_path, claimed):
    w = _Writer()
    w.tensor(FLOATS, "Float", "f", [8], [1])
    data = bytearray(w.buf)
    at = len(data) - 8 * 4 - 8  # the storage's int64 element count
    data[at : at + 8] = struct.pack("<q", claimed)
    path = tmp_path / "x.t7"
    path.write_bytes(bytes(data))
    with bounded(), pytest.raises(Torch7Error, match="truncated"):
        load_t7(path)


def test_deep_tables_and_huge_table_counts(tmp_path):
    w = _Writer()
    for i in range(5000):  # 5,000 nested one-entry tables: was a RecursionError
        w.i32(3)
        w.i32(i + 1)
        w.i32(1)
        w.string("k")
    w.i32(0)
    deep = tmp_path / "deep.t7"
    deep.write_bytes(bytes(w.buf))
    with bounded(), pytest.raises(Torch7Error, match="nested deeper"):
        load_t7(deep)
    big = tmp_path / "big.t7"
    big.write_bytes(struct.pack("<iii", 3, 1, 2**31 - 1))
    with bounded(), pytest.raises(Torch7Error, match="does not fit"):
        load_t7(big)


def test_mixed_fea_txt_list(tmp_path):
    w = _Writer()
    w.table(
        [
            (
                "fea_txt",
                lambda w: w.table(
                    [
                        (lambda w: w.number(1), lambda w: w.tensor(FLOATS, "Float", "f", [8], [1])),
                        (lambda w: w.number(2), lambda w: w.string("not a tensor")),
                    ]
                ),
            )
        ]
    )
    path = tmp_path / "mixed.t7"
    path.write_bytes(bytes(w.buf))
    with pytest.raises(Torch7Error, match="list of tensors"):  # was AttributeError
        load_t7_embeddings(path)


def test_npy_header_claiming_a_huge_shape(tmp_path):
    # a valid version-1.0 header (padded to 128 bytes) claiming 40 TB, then 32 bytes of data
    crafted = bytearray(np.lib.format.MAGIC_PREFIX + bytes([1, 0]))
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999999, 1024), }"
    text = text.ljust(128 - len(crafted) - 2 - 1) + b"\n"
    crafted += struct.pack("<H", len(text)) + text + bytes(32)
    path = tmp_path / "x.npy"
    path.write_bytes(bytes(crafted))
    with bounded(), pytest.raises(Torch7Error, match="header claims shape"):
        load_sentence_vectors(path)


def test_sample_embeddings_cli_is_one_line(tmp_path):
    path = _tensor_file(tmp_path, [2, 4], [-4, 1])
    r = cli("sample", "--embeddings", str(path), "--out", str(tmp_path / "o"))
    assert_one_line(r, "negative stride")
    assert not (tmp_path / "o").exists()
