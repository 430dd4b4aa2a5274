"""The Lua Torch7 .t7 reader, on generated files and on the real StackGAN demo file."""

import struct

import numpy as np
import pytest

from stackgan.text.torch7 import Torch7Error, load_t7, load_t7_embeddings

from .conftest import SHARED

REAL = SHARED / "data" / "stackgan_example_caption_charcnnrnn_1x1024.t7"


class _Writer:
    """Just enough of torch7's File:writeObject to make fixtures."""

    def __init__(self, versioned=True):
        self.buf = bytearray()
        self.next_index = 1
        self.versioned = versioned

    def i32(self, v):
        self.buf += struct.pack("<i", v)

    def i64(self, v):
        self.buf += struct.pack("<q", v)

    def s(self, text):
        b = text.encode()
        self.i32(len(b))
        self.buf += b

    def index(self):
        self.next_index += 1
        return self.next_index - 1

    def number(self, x):
        self.i32(1)
        self.buf += struct.pack("<d", x)

    def string(self, text):
        self.i32(2)
        self.s(text)

    def table(self, items, index=None):
        self.i32(3)
        self.i32(index or self.index())
        self.i32(len(items))
        for k, v in items:
            k(self) if callable(k) else self.string(k)
            v(self)

    def back_ref_table(self, index):
        self.i32(3)
        self.i32(index)

    def tensor(self, arr, kind, fmt, sizes, strides, offset=1):
        self.i32(4)
        self.i32(self.index())
        if self.versioned:
            self.s("V 1")
        self.s(f"torch.{kind}Tensor")
        self.i32(len(sizes))
        for n in sizes:
            self.i64(n)
        for st in strides:
            self.i64(st)
        self.i64(offset)
        self.i32(4)
        self.i32(self.index())
        if self.versioned:
            self.s("V 1")
        self.s(f"torch.{kind}Storage")
        self.i64(len(arr))
        self.buf += struct.pack(f"<{len(arr)}{fmt}", *arr)


def _write(tmp_path, w, name="x.t7"):
    p = tmp_path / name
    p.write_bytes(bytes(w.buf))
    return p


@pytest.mark.parametrize("versioned", [True, False])
def test_tables_tensors_and_strides(tmp_path, versioned):
    w = _Writer(versioned)
    data = list(range(12))
    w.table(
        [
            ("name", lambda w: w.string("hello")),
            ("pi", lambda w: w.number(3.25)),
            (
                "list",
                lambda w: w.table(
                    [
                        (lambda w: w.number(1), lambda w: w.number(7)),
                        (lambda w: w.number(2), lambda w: w.string("b")),
                    ]
                ),
            ),
            # a 3x2 view with transposed strides and an offset into a 12-element storage
            ("t", lambda w: w.tensor([float(x) for x in data], "Double", "d", [3, 2], [1, 3], 2)),
            ("ids", lambda w: w.tensor(data, "Long", "q", [2, 6], [6, 1])),
        ]
    )
    obj = load_t7(_write(tmp_path, w))
    assert obj["name"] == "hello" and obj["pi"] == 3.25 and obj["list"] == [7, "b"]
    expected = np.arange(12, dtype=np.float64)[1:][np.array([[0, 3], [1, 4], [2, 5]])]
    assert obj["t"].dtype == np.float64 and np.array_equal(obj["t"], expected)
    assert obj["ids"].dtype == np.int64 and np.array_equal(obj["ids"], np.arange(12).reshape(2, 6))


def test_shared_references_come_back_as_the_same_object(tmp_path):
    w = _Writer()
    w.table(
        [
            ("a", lambda w: w.table([("x", lambda w: w.number(1))], index=9)),
            ("b", lambda w: w.back_ref_table(9)),
        ]
    )
    obj = load_t7(_write(tmp_path, w))
    assert obj["a"] is obj["b"] and obj["a"] == {"x": 1}


def test_demo_layout_embeddings(tmp_path):
    w = _Writer()
    vec = [0.5] * 8
    w.table(
        [
            (
                "raw_txt",
                lambda w: w.table([(lambda w: w.number(1), lambda w: w.string("a red bird"))]),
            ),
            (
                "fea_txt",
                lambda w: w.table(
                    [(lambda w: w.number(1), lambda w: w.tensor(vec, "Cuda", "f", [1, 8], [8, 1]))]
                ),
            ),
        ]
    )
    sentences, emb = load_t7_embeddings(_write(tmp_path, w))
    assert sentences == ["a red bird"] and emb.shape == (1, 8) and emb.dtype == np.float32


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(Torch7Error, match="not found"):
        load_t7(tmp_path / "missing.t7")
    w = _Writer()
    w.tensor([1.0, 2.0, 3.0], "Float", "f", [3], [1])
    good = bytes(w.buf)
    (tmp_path / "cut.t7").write_bytes(good[:-5])
    with pytest.raises(Torch7Error, match="truncated"):
        load_t7(tmp_path / "cut.t7")
    (tmp_path / "junk.t7").write_bytes(struct.pack("<i", 42))
    with pytest.raises(Torch7Error, match="unknown type tag 42"):
        load_t7(tmp_path / "junk.t7")
    w = _Writer()
    w.tensor([1.0], "Float", "f", [4], [1])  # claims 4 elements of a 1-element storage
    with pytest.raises(Torch7Error, match="past its storage"):
        load_t7(_write(tmp_path, w, "over.t7"))


@pytest.mark.skipif(not REAL.exists(), reason="../shared is not present")
def test_the_real_stackgan_demo_file():
    sentences, emb = load_t7_embeddings(REAL)
    sentence = (REAL.parent / "stackgan_example_caption.txt").read_text().strip()
    assert sentences == [sentence]
    assert emb.shape == (1, 1024) and np.isfinite(emb).all()
    assert 1.0 < float(np.linalg.norm(emb)) < 100.0  # a real char-CNN-RNN vector, not zeros


def _precomputed_model(tmp_path, tiny_shapes, dim):
    from stackgan.checkpoint import export_generator
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes, **{"text.encoder": "precomputed", "text.dim": dim})
    path = tmp_path / "model.safetensors"
    export_generator(path, build_generator(cfg).state_dict(), cfg)
    return path


def test_sample_from_embeddings_files(tmp_path, tiny_shapes):
    from click.testing import CliRunner

    from stackgan.cli import main

    model = _precomputed_model(tmp_path, tiny_shapes, 1024)
    w = _Writer()
    w.table(
        [
            (
                "raw_txt",
                lambda w: w.table([(lambda w: w.number(1), lambda w: w.string("a red bird"))]),
            ),
            (
                "fea_txt",
                lambda w: w.table(
                    [
                        (
                            lambda w: w.number(1),
                            lambda w: w.tensor([0.5] * 1024, "Float", "f", [1, 1024], [1024, 1]),
                        )
                    ]
                ),
            ),
        ]
    )
    t7 = _write(tmp_path, w, "caption.t7")
    res = CliRunner().invoke(
        main,
        ["sample", "--model", str(model), "--embeddings", str(t7), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 0, res.output
    assert "0000: a red bird" in res.output and (tmp_path / "o" / "0000.png").exists()
    npy = tmp_path / "vecs.npy"
    np.save(npy, np.random.default_rng(0).normal(size=(3, 1024)).astype(np.float32))
    res = CliRunner().invoke(
        main,
        ["sample", "--model", str(model), "--embeddings", str(npy), "--out", str(tmp_path / "n")],
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "n").glob("*.png"))[-1] == "grid.png"
    assert len(list((tmp_path / "n").glob("0*.png"))) == 3
    np.save(npy, np.zeros((2, 5), np.float32))  # wrong dimension: a clear error, nothing written
    res = CliRunner().invoke(
        main,
        ["sample", "--model", str(model), "--embeddings", str(npy), "--out", str(tmp_path / "x")],
    )
    assert res.exit_code != 0 and "5-d vectors" in res.output and not (tmp_path / "x").exists()


@pytest.mark.skipif(not REAL.exists(), reason="../shared is not present")
def test_sample_from_the_real_demo_t7(tmp_path, tiny_shapes):
    from click.testing import CliRunner

    from stackgan.cli import main

    model = _precomputed_model(tmp_path, tiny_shapes, 1024)
    res = CliRunner().invoke(
        main,
        ["sample", "--model", str(model), "--embeddings", str(REAL), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 0, res.output
    assert "this bird has a bright yellow body" in res.output
