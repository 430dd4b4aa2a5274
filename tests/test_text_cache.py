"""Caption embeddings of a dataset: each distinct caption encoded once, with a progress bar,
cached for later runs, and an interrupted encoding picks up where it stopped."""

from __future__ import annotations

import pytest
import torch

from stackgan.text import encoders
from stackgan.text.encoders import MiniLMEncoder, dataset_embeddings

CAPTIONS = [
    "a big red star on a sky blue background",
    "a tiny violet circle on the left",
    "a big red star on a sky blue background",  # a repeat: encoded once
    "there is a small green square at the top",
    "a tiny violet circle on the left",
    "the triangle is orange and sits at the bottom",
]


class Recording:
    """The real MiniLM encoder, recording what it was asked to encode; ``fail_after`` calls
    it raises KeyboardInterrupt, as a Ctrl-C mid-encoding would."""

    name = "minilm"
    dim = 384

    def __init__(self, inner: MiniLMEncoder, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.seen = inner, fail_after, []

    def encode(self, captions: list[str]) -> torch.Tensor:
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt
        self.seen.append(list(captions))
        return self.inner.encode(captions)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder()


def _embed(tmp_path, encoder, progress=False):
    return dataset_embeddings(
        CAPTIONS, "minilm", tmp_path, encoder=encoder, progress=progress, device="cpu"
    )


def test_each_distinct_caption_is_encoded_once_and_cached(tmp_path, minilm, capsys):
    rec = Recording(minilm)
    emb = _embed(tmp_path, rec, progress=True)
    asked = [c for chunk in rec.seen for c in chunk]
    assert sorted(asked) == sorted(set(CAPTIONS))  # 4 distinct of 6
    assert torch.equal(emb[0], emb[2]) and torch.equal(emb[1], emb[4])
    direct = minilm.encode(CAPTIONS)
    assert torch.allclose(emb, direct, atol=2e-2)  # (the cache is fp16)
    bar = capsys.readouterr().err
    assert "encoding captions" in bar and "4/4" in bar and "caption" in bar  # count, rate, ETA
    again = Recording(minilm)
    assert torch.equal(_embed(tmp_path, again), emb) and again.seen == []  # a later run: cached


def test_an_interrupted_encoding_resumes_where_it_stopped(tmp_path, minilm, monkeypatch):
    monkeypatch.setattr(encoders, "ENCODE_CHUNK", 2)
    monkeypatch.setattr(encoders, "PARTIAL_SAVE_S", -1.0)  # keep the work after every chunk
    first = Recording(minilm, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        _embed(tmp_path / "a", first)
    assert len(first.seen) == 1 and list((tmp_path / "a").glob("*.partial.pt"))
    second = Recording(minilm)
    emb = _embed(tmp_path / "a", second)
    assert [c for chunk in second.seen for c in chunk] == [
        c for c in sorted(dict.fromkeys(CAPTIONS), key=len, reverse=True) if c not in first.seen[0]
    ]
    assert not list((tmp_path / "a").glob("*.partial.pt"))  # done: only the full cache stays
    whole = _embed(tmp_path / "b", Recording(minilm))
    assert torch.equal(emb, whole)
