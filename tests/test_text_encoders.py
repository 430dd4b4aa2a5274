import pickle

import numpy as np
import pytest
import torch

from stackgan.text import PrecomputedEmbeddings, TextEncoderError, build_encoder
from stackgan.text.encoders import dataset_embeddings
from stackgan.train import train

from .conftest import tiny_config


def _write_char_cnn_rnn(root, split, dim=1024, per_image=10, seed=0):
    with open(root / split / "filenames.pickle", "rb") as f:
        n = len(pickle.load(f))
    arr = np.random.default_rng(seed).standard_normal((n, per_image, dim)).astype(np.float32)
    path = root / split / "char-CNN-RNN-embeddings.pickle"
    with open(path, "wb") as f:
        pickle.dump(arr, f, protocol=2)  # as the original Python 2 release wrote them
    return path, arr


def test_precomputed_reader_and_flattening(tiny_shapes, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    path, arr = _write_char_cnn_rnn(root, "train", per_image=4)
    assert PrecomputedEmbeddings(path).load().shape == arr.shape
    counts = [10] * arr.shape[0]
    flat = dataset_embeddings(
        [], "precomputed", tmp_path, embeddings_file=str(path), caption_counts=counts
    )
    assert flat.shape == (10 * arr.shape[0], 1024)
    assert torch.equal(flat[5], torch.from_numpy(arr[0, 1]))  # caption 5 reuses row 5 % 4
    with pytest.raises(TextEncoderError, match="rows of embeddings"):
        dataset_embeddings(
            [], "precomputed", tmp_path, embeddings_file=str(path), caption_counts=[10]
        )
    with pytest.raises(TextEncoderError, match="cannot encode new sentences"):
        PrecomputedEmbeddings(path).encode(["a bird"])
    bad = tmp_path / "bad.pickle"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(TextEncoderError, match="cannot read embeddings"):
        PrecomputedEmbeddings(bad).load()


def test_training_on_precomputed_embeddings(tiny_shapes, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    path, _ = _write_char_cnn_rnn(root, "train")
    cfg = tiny_config(
        root, **{"text.encoder": "precomputed", "text.dim": 1024, "text.embeddings_file": str(path)}
    )
    train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").exists()
    wrong = tiny_config(
        root, **{"text.encoder": "precomputed", "text.dim": 384, "text.embeddings_file": str(path)}
    )
    with pytest.raises(ValueError, match=r"text\.dim is 384"):
        train(wrong, tmp_path / "run2")


def test_minilm_encodes_any_sentence():
    enc = build_encoder("minilm")
    e = enc.encode(["a big red star on a sky blue background", "zxqv flibbertigibbet"])
    assert e.shape == (2, 384)
    assert torch.allclose(e.norm(dim=1), torch.full((2,), 384**0.5), atol=1e-3)
    again = enc.encode(["a big red star on a sky blue background"])
    assert torch.allclose(e[0], again[0], atol=1e-5)
    with pytest.raises(TextEncoderError, match="unknown text encoder"):
        build_encoder("clip")
