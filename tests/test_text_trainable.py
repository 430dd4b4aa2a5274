"""The trainable text encoder: open vocabulary, training, save/load, use by the GAN, evaluation."""

import numpy as np
import pytest
import torch

from stackgan.config import ConfigError
from stackgan.text.base import TextEncoderError
from stackgan.text.encoders import build_encoder
from stackgan.text.trainable import (
    SentenceEncoder,
    TextImageMatcher,
    TrainedTextEncoder,
    matching_loss,
    save_matcher,
    subword_ids,
    words,
)
from stackgan.train.text_encoder import train_matcher

from .conftest import tiny_config

COLOURS = ["red", "blue", "green", "yellow"]


def _toy(n=64, seed=0):
    """Images are 4-d colour indicators (+ noise); each has captions naming its colour."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 4, n)
    feats = np.eye(4)[ids] * 3 + rng.normal(0, 0.3, (n, 4))
    caps = [[f"a {COLOURS[i]} bird", f"this bird is {COLOURS[i]}"] for i in ids]
    return caps, feats.astype(np.float32), ids


def test_unseen_words_get_vectors_from_their_spelling():
    assert words("A Crimson-ish bird, tiny!") == [
        "a",
        "crimson",
        "-",
        "ish",
        "bird",
        ",",
        "tiny",
        "!",
    ]
    seen, unseen = set(subword_ids("crimson", 50_000)), set(subword_ids("crimsonish", 50_000))
    assert len(seen & unseen) >= 5  # shared n-grams: <cr, cri, rim, ims, ...
    assert subword_ids("crimson", 50_000) == subword_ids("crimson", 50_000)  # stable hashing
    enc = SentenceEncoder(buckets=1000, emb_dim=8, hidden=8, out_dim=6)
    out = enc(["zyxwvut qqq", "a bird", "?"])  # nonsense words and punctuation still encode
    assert out.shape == (3, 6) and torch.isfinite(out).all()


def test_class_mask_drops_same_class_negatives():
    torch.manual_seed(0)
    text, image = torch.randn(4, 5), torch.randn(4, 5)
    scale = torch.tensor(0.0)  # exp(0) = 1: logits are the cosines
    labels = torch.tensor([0, 0, 1, 2])
    cos = torch.nn.functional.normalize(text, dim=1) @ torch.nn.functional.normalize(image, dim=1).T
    allowed = ~((labels[:, None] == labels[None, :]) & ~torch.eye(4, dtype=torch.bool))
    expect = 0.0
    for sims in (cos, cos.T):  # caption -> images, image -> captions
        for i in range(4):
            row = sims[i][allowed[i]]
            expect += float(-sims[i, i] + torch.logsumexp(row, 0)) / 8
    assert float(matching_loss(text, image, scale, labels)) == pytest.approx(expect, rel=1e-5)
    plain = float(matching_loss(text, image, scale))
    masked = float(matching_loss(text, image, scale, labels))
    unlabeled = torch.arange(4)  # distinct classes = no mask
    assert float(matching_loss(text, image, scale, unlabeled)) == pytest.approx(plain)
    assert masked < plain  # fewer negatives in the softmax
    # training takes a class id per image
    caps, feats, ids = _toy(n=16)
    small = SentenceEncoder(buckets=200, emb_dim=4, hidden=4, out_dim=4)
    _, losses = train_matcher(caps, feats, text=small, labels=ids, epochs=2, progress=False)
    assert len(losses) == 2 and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="labels"):
        train_matcher(caps, feats, text=small, labels=ids[:3], epochs=1, progress=False)


def test_default_encoder_is_seeded_and_sized_by_buckets():
    caps, feats, _ = _toy(n=16)
    runs = [train_matcher(caps, feats, buckets=300, epochs=1, progress=False) for _ in range(2)]
    (m1, l1), (m2, l2) = runs
    assert m1.text.buckets == 300 and m1.text.ngrams.weight.shape[0] == 300
    assert l1 == l2  # the new encoder is built after seeding: the same run twice
    assert torch.equal(m1.text.ngrams.weight, m2.text.ngrams.weight)


def test_training_learns_to_match_and_round_trips(tmp_path):
    caps, feats, _ = _toy()
    text = SentenceEncoder(buckets=2000, emb_dim=16, hidden=16, out_dim=8)
    matcher, losses = train_matcher(
        caps, feats, text=text, epochs=40, batch_size=32, progress=False
    )
    assert losses[-1] < losses[0] * 0.7
    path = tmp_path / "enc.safetensors"
    save_matcher(path, matcher, {"note": "toy"})
    enc = build_encoder(str(path))
    assert isinstance(enc, TrainedTextEncoder) and enc.dim == 8
    emb = enc.encode([f"a {c} bird" for c in COLOURS])
    assert emb.shape == (4, 8)
    assert torch.allclose(emb.norm(dim=1), torch.full((4,), 8**0.5), atol=1e-4)
    with torch.no_grad():
        direct = torch.nn.functional.normalize(
            matcher.text([f"a {c} bird" for c in COLOURS]), dim=1
        )
    assert torch.allclose(emb / 8**0.5, direct, atol=1e-5)  # same weights after the round trip
    # captions retrieve images of their colour
    img = torch.nn.functional.normalize(enc.encode_images(np.eye(4, dtype=np.float32) * 3), dim=1)
    assert (emb @ img.T).argmax(1).tolist() == [0, 1, 2, 3]
    with pytest.raises(TextEncoderError, match="empty"):
        enc.encode([""])
    # one read gives weights, header and the digest that names the file in caches and exports
    from stackgan.text.trainable import load_matcher
    from stackgan.utils.cache import file_digest

    _, meta = load_matcher(path)
    assert meta["format"] == "stackgan-text-encoder" and meta["digest"] == file_digest(path)
    for cut in (4, 100, path.stat().st_size - 10):  # in the length, the header, the weights
        (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:cut])
        with pytest.raises(TextEncoderError, match="cannot read"):
            build_encoder(str(tmp_path / "cut.safetensors"))


def test_bad_encoder_files_are_clear_errors(tmp_path):
    with pytest.raises(TextEncoderError, match="not found"):
        build_encoder(str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TextEncoderError, match="cannot read"):
        build_encoder(str(tmp_path / "junk.safetensors"))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "x"})
    with pytest.raises(TextEncoderError, match="not a stackgan text encoder"):
        build_encoder(str(tmp_path / "other.safetensors"))


def test_gan_trains_with_a_trained_encoder_and_checks_its_dimension(tiny_shapes, tmp_path):
    from stackgan.sampling import Text2ImageSampler
    from stackgan.train import train

    caps, feats, _ = _toy(16)
    matcher, _ = train_matcher(
        caps, feats, text=SentenceEncoder(1000, 8, 8, 12), epochs=1, progress=False
    )
    path = tmp_path / "enc.safetensors"
    save_matcher(path, matcher, {})
    cfg = tiny_config(tiny_shapes, **{"text.encoder": str(path), "text.dim": 12})
    export = train(cfg, tmp_path / "run")
    sampler = Text2ImageSampler.from_pretrained(export)
    out = sampler(["a glorbish violet thingamajig"], seed=0)  # words never seen anywhere
    assert out.images[0].size == (16, 16)
    wrong = tiny_config(tiny_shapes, **{"text.encoder": str(path), "text.dim": 384})
    with pytest.raises(ConfigError, match=r"text\.dim is 384 but .* gives 12-d"):
        train(wrong, tmp_path / "run2")
    # the export carries the encoder: it samples the same after the encoder file is gone
    moved = tmp_path / "elsewhere" / "model.safetensors"
    moved.parent.mkdir()
    export.rename(moved)
    path.unlink()
    elsewhere = Text2ImageSampler.from_pretrained(moved)
    again = elsewhere(["a glorbish violet thingamajig"], seed=0)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(out.images[0]))
    assert elsewhere.encoder.name == sampler.encoder.name  # same digest: same caption caches
    # an export written again in fp16 (`stackgan export EXPORT --half`) keeps the encoder,
    # although the encoder file is gone
    from click.testing import CliRunner

    from stackgan.cli import main

    half = tmp_path / "half.safetensors"
    r = CliRunner().invoke(main, ["export", str(moved), "--out", str(half), "--half"])
    assert r.exit_code == 0, r.output
    halved = Text2ImageSampler.from_pretrained(half)
    assert halved.encoder.name == sampler.encoder.name
    caps = ["a glorbish violet thingamajig"]
    assert torch.equal(halved.encode_text(caps), elsewhere.encode_text(caps))  # encoder kept fp32
    assert half.stat().st_size < moved.stat().st_size


def test_export_embeds_the_encoder_read_at_the_start_not_a_later_file(tiny_shapes, tmp_path):
    """A run reads its encoder once; if the file is replaced mid-run, exports still embed the
    encoder the run trained with (and its digest), not the new file's."""
    from stackgan.checkpoint import export_generator, load_export_text_encoder
    from stackgan.models.registry import build_generator

    path = tmp_path / "enc.safetensors"
    torch.manual_seed(0)
    save_matcher(path, TextImageMatcher(SentenceEncoder(1000, 8, 8, 12), 4), {})
    read_at_start = TrainedTextEncoder(path)
    save_matcher(path, TextImageMatcher(SentenceEncoder(1000, 8, 8, 12), 4), {})  # new weights
    cfg = tiny_config(tiny_shapes, **{"text.encoder": str(path), "text.dim": 12})
    state = build_generator(cfg).state_dict()
    export_generator(tmp_path / "a.safetensors", state, cfg, text_encoder=read_at_start)
    export_generator(tmp_path / "b.safetensors", state, cfg)  # reads the file as it is now
    a = load_export_text_encoder(tmp_path / "a.safetensors")
    b = load_export_text_encoder(tmp_path / "b.safetensors")
    assert a is not None and b is not None
    assert a[0]["digest"] == read_at_start.meta["digest"] != b[0]["digest"]
    want = read_at_start.matcher.state_dict()
    assert all(torch.equal(a[1][k], want[k]) for k in want)
    assert not all(torch.equal(b[1][k], want[k]) for k in want)


def test_text_encoder_evaluation_on_shapes(tiny_shapes, tmp_path):
    from stackgan.metrics.text_retrieval import evaluate_text_encoder

    from .conftest import MeanColour

    net = MeanColour()
    res = evaluate_text_encoder(tiny_shapes, "random", net, progress=False)
    assert res["num_test"] > 0 and 0 <= res["r_precision"] <= 1 and res["top5"] >= res["top1"]
    from stackgan.metrics.real import dataset_features

    feats, ds = dataset_features(tiny_shapes, "train", 256, net, progress=False)
    matcher, _ = train_matcher(
        ds.image_captions(), feats, text=SentenceEncoder(1000, 8, 8, 8), epochs=2, progress=False
    )
    save_matcher(tmp_path / "e.safetensors", matcher, {})
    res = evaluate_text_encoder(tiny_shapes, str(tmp_path / "e.safetensors"), net, progress=False)
    assert set(res) >= {"r_precision", "r_precision_std", "top1", "top5"}


def test_caption_embeddings_are_the_same_fresh_and_from_the_cache(tmp_path):
    """The first run must train on what later runs read back (the cache is fp16)."""
    from stackgan.text.encoders import dataset_embeddings

    caps, feats, _ = _toy(8)
    matcher, _ = train_matcher(
        caps, feats, text=SentenceEncoder(500, 8, 8, 12), epochs=1, progress=False
    )
    path = tmp_path / "enc.safetensors"
    save_matcher(path, matcher, {})
    flat = [c for cs in caps for c in cs]
    fresh = dataset_embeddings(flat, str(path), tmp_path / "cache", progress=False)
    (cached_file,) = (tmp_path / "cache").glob("text-*.pt")
    cached = dataset_embeddings(flat, str(path), tmp_path / "cache", progress=False)
    assert fresh.dtype == cached.dtype == torch.float32 and torch.equal(fresh, cached)
    assert torch.load(cached_file, weights_only=True).dtype == torch.float16
    # an encoder the caller has already read is used as is: the file is not read again
    enc = TrainedTextEncoder(path)
    path.unlink()
    again = dataset_embeddings(flat, str(path), tmp_path / "other", progress=False, encoder=enc)
    assert torch.equal(again, fresh)


def test_class_mask_is_automatic_off_for_shapes_on_for_species(tiny_shapes, tmp_path):
    from types import SimpleNamespace

    from stackgan.data.dataset import TextImageDataset
    from stackgan.metrics.text_retrieval import mask_labels

    shapes = TextImageDataset(tiny_shapes, "train", progress=False)
    assert shapes.has_classes and mask_labels(shapes) is None  # shape-colour classes: no mask
    assert torch.equal(mask_labels(shapes, True), torch.as_tensor(shapes.class_ids))
    birds = SimpleNamespace(root=tmp_path, has_classes=True, class_ids=torch.tensor([3, 3, 7]))
    assert torch.equal(mask_labels(birds), birds.class_ids)  # species: masked by default
    assert mask_labels(birds, False) is None
    assert mask_labels(SimpleNamespace(root=tmp_path, has_classes=False, class_ids=None)) is None
