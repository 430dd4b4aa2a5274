"""FID, Inception Score and the Inception feature network."""

import numpy as np
import pytest
import torch

from stackgan.metrics.features import MetricError
from stackgan.metrics.fid import FeatureStats, fid_from_features, frechet_distance
from stackgan.metrics.inception_score import head_probabilities, inception_score, train_head


def _feats(n=500, d=16, shift=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = _feats()
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    fids = [fid_from_features(a, a + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[0] > 0
    # a pure shift adds exactly |shift|^2 per dimension
    assert fids[2] == pytest.approx(16 * 1.0**2, rel=1e-6)


def test_fid_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    a, b = FeatureStats(mu1, np.diag(v1), 10), FeatureStats(mu2, np.diag(v2), 10)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fid_errors_and_stats_round_trip(tmp_path):
    with pytest.raises(MetricError, match="N >= 2"):
        FeatureStats.of(np.zeros((1, 4)))
    with pytest.raises(MetricError, match="sizes differ"):
        fid_from_features(_feats(d=4), _feats(d=5))
    s = FeatureStats.of(_feats())
    s.save(tmp_path / "s.npz", {"dataset": "x"})
    t = FeatureStats.load(tmp_path / "s.npz")
    assert t.num == 500 and np.array_equal(s.mu, t.mu) and np.array_equal(s.sigma, t.sigma)


def test_inception_score_bounds():
    uniform = np.full((100, 7), 1 / 7)
    assert inception_score(uniform) == pytest.approx((1.0, 0.0), abs=1e-9)
    confident = np.eye(5)[np.arange(100) % 5]  # every class equally often, each image certain
    mean, std = inception_score(confident)
    assert mean == pytest.approx(5.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    one_class = np.eye(5)[np.zeros(100, dtype=int)]  # certain but never diverse
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(MetricError):
        inception_score(uniform[:5])


def test_feature_head_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, size=(4, 32))
    labels = rng.permutation(np.repeat(np.arange(4) * 10, 50))  # arbitrary ids, mixed order
    feats = centres[labels // 10] + rng.normal(size=(200, 32))
    head = train_head(feats, labels, epochs=100)
    probs = head_probabilities(head, feats)
    assert probs.shape == (200, 4)
    assert (probs.argmax(1) == labels // 10).mean() > 0.95
    assert inception_score(probs)[0] > 3.5  # near the 4-class ceiling


def test_real_inception_network_gives_pool3_features():
    pytest.importorskip("torch")
    from stackgan.metrics.features import FEATURE_DIM, InceptionFeatures

    try:
        net = InceptionFeatures()
    except MetricError as exc:
        pytest.skip(str(exc))
    imgs = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    f = net(imgs)
    assert f.shape == (2, FEATURE_DIM) and torch.isfinite(f).all()
    # the same images as [-1, 1] floats give the same features
    g = net(imgs.permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert torch.allclose(f, g, atol=1e-3)


def test_fid_inception_in_pytorch_is_the_torchscript_network(tmp_path):
    """The plain-PyTorch FID Inception (pytorch-fid's names), given default_1.pt's weights,
    computes the same pool3 features as the TorchScript file; saved as a .pth it loads as a
    user's pytorch-fid weights file would."""
    from stackgan.metrics import fid_inception as FI
    from stackgan.metrics.features import default_network_path, feature_network

    try:
        ts = torch.jit.load(str(default_network_path()), map_location="cpu").eval()
    except MetricError as exc:
        pytest.skip(str(exc))
    state = FI.state_from_torchscript(ts.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(FI.NUM_LOGITS, 2048), torch.zeros(1008)
    pth = tmp_path / "pt_inception-test.pth"
    torch.save(state, pth)
    net = feature_network(pth)
    assert net.name.startswith("inception-pth-")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        want = ts(FI.preprocess(x))
    assert torch.allclose(net(x), want, atol=1e-4)
    assert net.logits(x).shape == (2, FI.NUM_LOGITS)
    from stackgan.metrics.evaluate import UserClassifier  # the .pth's logits serve the IS too

    probs = UserClassifier(pth).probabilities(np.zeros((3, 32, 32, 3), np.uint8))
    assert probs.shape == (3, FI.NUM_LOGITS) and np.allclose(probs.sum(1), 1)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(MetricError, match="missing Mixed_7c"):
        feature_network(tmp_path / "broken.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MetricError, match="cannot read"):
        feature_network(tmp_path / "junk.pth")


class _MeanColour(torch.nn.Module):
    """A stand-in feature network: per-channel mean and std (6-d), counting its calls."""

    name = "meancolour-test"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def test_dataset_features_are_cached_per_split_and_size(tiny_shapes):
    from stackgan.metrics.real import dataset_features

    net = _MeanColour()
    feats, ds = dataset_features(tiny_shapes, "train", 32, net, progress=False)
    assert feats.shape == (len(ds), 6) and net.calls > 0
    calls = net.calls
    again, _ = dataset_features(tiny_shapes, "train", 32, net, progress=False)
    assert net.calls == calls and np.array_equal(feats, again)  # read from the cache
    other, _ = dataset_features(tiny_shapes, "train", 16, net, progress=False)
    assert net.calls > calls and other.shape == feats.shape  # another size, computed anew
    # real train vs real test are close; train vs noise far apart (FID on the stand-in features)
    test, _ = dataset_features(tiny_shapes, "test", 32, net, progress=False)
    noise = net(torch.rand(len(test), 3, 32, 32) * 2 - 1).double().numpy()
    assert fid_from_features(feats, test) < fid_from_features(feats, noise)


def test_r_precision_with_a_toy_encoder_of_known_answers():
    from stackgan.metrics.r_precision import r_precision, retrieval_topk

    rng = np.random.default_rng(0)
    img = rng.normal(size=(300, 32))
    # a perfect encoder: each caption embeds exactly as its image -> R-precision 1, top-1 1
    assert r_precision(img, img)[0] == 1.0
    assert retrieval_topk(img, img) == {1: 1.0, 5: 1.0}
    # an encoder that ignores the text: every candidate ties -> the true one never ranks first
    const = np.ones((300, 32))
    assert r_precision(img, const)[0] == 0.0
    # a random encoder: about 1 in 100 by chance
    rand = rng.normal(size=(300, 32))
    assert r_precision(img, rand, seed=1)[0] < 0.05
    # half the captions right, half shuffled: R-precision about one half
    half = img.copy()
    half[150:] = rng.permutation(img[150:])
    assert 0.45 <= r_precision(img, half)[0] <= 0.56
    top = retrieval_topk(img, half)
    assert 0.49 <= top[1] <= 0.55 and top[5] >= top[1]


def test_paired_comparison_of_two_encoders_hits():
    from stackgan.metrics.r_precision import fold_stats, paired_comparison

    a = np.zeros(100, dtype=bool)
    a[:30] = True
    b = a.copy()
    b[:10] = False  # A alone gets 10 images, B alone none
    cmp = paired_comparison(a, b)
    assert cmp["difference"] == pytest.approx(0.1)
    assert (cmp["only_a"], cmp["only_b"]) == (10, 0)
    assert cmp["mcnemar_p"] == pytest.approx(2 / 2**10)  # exact binomial, two-sided
    assert 0.03 <= cmp["ci95_low"] < 0.1 < cmp["ci95_high"] <= 0.17
    same = paired_comparison(a, a)
    assert same["difference"] == 0 and same["mcnemar_p"] == 1.0
    b2 = a.copy()
    b2[:5], b2[50:55] = False, True  # 5 each way: no evidence either way
    assert paired_comparison(a, b2)["mcnemar_p"] == 1.0
    assert fold_stats(a, folds=10) == (pytest.approx(0.3), pytest.approx(0.4582576))
    with pytest.raises(MetricError, match="equal-length"):
        paired_comparison(a, b[:50])


def test_paired_comparison_bootstrap_in_chunks_is_the_same_draw(monkeypatch):
    from stackgan.metrics import r_precision

    rng = np.random.default_rng(1)
    a, b = rng.random(300) < 0.3, rng.random(300) < 0.2
    whole = r_precision.paired_comparison(a, b, resamples=1000)
    monkeypatch.setattr(r_precision, "BOOTSTRAP_CHUNK", 300 * 7)  # 7 resamples a draw, 143 draws
    assert r_precision.paired_comparison(a, b, resamples=1000) == whole


def test_r_precision_groups_keep_an_images_own_captions_out_of_the_negatives():
    from stackgan.metrics.r_precision import r_precision

    img = np.repeat(np.eye(3), 2, axis=0)  # 3 images, each with 2 caption rows
    assert r_precision(img, img, num_negatives=3, groups=np.repeat(np.arange(3), 2))[0] == 1.0
    with pytest.raises(MetricError, match="same group"):
        r_precision(img, img, groups=np.zeros(6))


def test_eval_writes_metrics_report_and_history(tiny_shapes, tmp_path):
    """The whole eval pipeline on a tiny model (untrained, exported) and stand-in features."""
    import json

    from stackgan.checkpoint import export_generator
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes, stage=2)
    model = tmp_path / "model.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "eval" / "run"
    res = evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12),
        extractor=_MeanColour(),
        progress=False,
    )
    assert res["resolution"] == 32 and res["num_samples"] >= 2
    fid_key = f"fid{res['num_samples']}"
    assert res[fid_key] > 0 and res["diversity"] >= 0
    assert res["is"] >= 1.0 and 1.0 <= res["is_real"] <= res["is_num_classes"]
    assert set(res["consistency"]) >= {"object_color_acc", "background_acc"}
    attrs = res["attributes"]  # the learned per-attribute judge, with its real-image scale
    for key in ("generated", "real_test"):
        assert set(attrs[key]) == {"color", "background", "shape", "size", "position", "pattern"}
        assert all(0 <= v <= 1 for v in attrs[key].values())
    assert "r_precision" not in res  # no trained text-image model given
    saved = json.loads((out / "metrics.json").read_text())
    assert saved[fid_key] == res[fid_key]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and fid_key in page
    from PIL import Image

    for name in ("text-interpolation", "z-interpolation", "ca-on", "ca-off", "nearest-neighbours"):
        assert (out / f"fig-{name}.png").exists(), name
    with Image.open(out / "fig-nearest-neighbours.png") as im:  # rows of 1 + 5 images of 32 px
        assert im.size[0] == 6 * 32 + 7 * 2
    with Image.open(out / "fig-stages.png") as im:  # Stage-I | Stage-II per caption, at 32 px
        assert im.size[0] == 2 * 32 and im.size[1] % 32 == 0 and im.size[1] >= 2 * 32
    assert "<th>generated</th><td><table><tr><th>color</th>" in page  # nested results as tables
    assert res["diversity_ca_off"] >= 0
    evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12),
        extractor=_MeanColour(),
        progress=False,
    )
    history = (tmp_path / "eval" / "eval-history.jsonl").read_text().splitlines()
    assert len(history) == 2 and json.loads(history[1])["model"] == str(model)


@pytest.mark.slow
def test_eval_cli_with_the_real_inception_network(tiny_shapes, tmp_path):
    """`stackgan eval` end to end on the real FID network (about a minute on 2 CPU cores)."""
    import json

    from click.testing import CliRunner

    from stackgan.checkpoint import export_generator
    from stackgan.cli import main
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    pytest.importorskip("safetensors")
    from stackgan.metrics.features import default_network_path

    try:
        default_network_path()
    except MetricError as exc:
        pytest.skip(str(exc))
    cfg = tiny_config(tiny_shapes)
    model = tmp_path / "m.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "ev"
    args = ["eval", "--model", str(model), "--data", str(tiny_shapes), "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--num-samples", "8"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["detector"].startswith("inception-") and metrics["fid8"] > 0


def test_report_opens_in_headless_chromium(tiny_shapes, tmp_path):
    """The report renders offline in Debian's chromium and all its inline images decode."""
    from stackgan.checkpoint import export_generator
    from stackgan.metrics.browser import check_report, find_chromium
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    if find_chromium() is None:
        pytest.skip("chromium is not installed (make test installs it where apt-get can)")
    cfg = tiny_config(tiny_shapes, stage=2)
    model = tmp_path / "model.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "ev"
    evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12),
        extractor=_MeanColour(),
        progress=False,
    )
    loaded, total = check_report(out / "report.html", out / "report.png")
    assert total >= 3 and loaded == total
    from PIL import Image

    with Image.open(out / "report.png") as shot:
        assert shot.size[0] == 1280
        px = np.asarray(shot.convert("RGB"))
    assert px.std() > 10  # rendered content, not a blank page


def test_paper_figures_have_the_right_layout_and_endpoints(tiny_shapes):
    from stackgan.metrics import figures as F
    from stackgan.models.registry import build_generator
    from stackgan.sampling import Text2ImageSampler

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    sampler = Text2ImageSampler(build_generator(cfg), cfg, encoder=None)
    emb = torch.randn(3, cfg.text.dim)
    grid = F.text_interpolation(sampler, emb[0], emb[1], steps=5, rows=2)
    assert grid.shape == (2 * 16 + 3 * 2, 5 * 16 + 6 * 2, 3)  # 2 rows of 5 tiles of 16 px
    # the first column is caption a itself (CA mean), the last caption b
    z = torch.randn(1, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    a = F._run(sampler, z, emb[0:1], torch.zeros(1, cfg.model.cond_dim))[0]
    b = F._run(sampler, z, emb[1:2], torch.zeros(1, cfg.model.cond_dim))[0]
    assert np.array_equal(grid[2:18, 2:18], a) and np.array_equal(grid[2:18, -18:-2], b)
    on, off = F.ca_ablation(sampler, emb, samples=4)
    assert on.shape == off.shape == (3 * 16 + 4 * 2, 4 * 16 + 5 * 2, 3)
    assert not np.array_equal(on, off)  # eps matters
    assert F.z_interpolation(sampler, emb[:2], steps=3).shape == (2 * 16 + 3 * 2, 3 * 16 + 4 * 2, 3)
    idx = F.nearest_indices(np.eye(3, 4), np.eye(4, 4) * 1.1, k=2)
    assert idx[:, 0].tolist() == [0, 1, 2]


def test_eval_r_precision_and_a_user_is_classifier(tiny_shapes, tmp_path):
    """--matcher gives AttnGAN R-precision of the generated images (real images beside it);
    --is-classifier replaces the pool3 head by the user's TorchScript classifier."""
    from stackgan.checkpoint import export_generator
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator
    from stackgan.text.trainable import SentenceEncoder, TextImageMatcher, save_matcher

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes)
    model = tmp_path / "model.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    matcher = tmp_path / "matcher.safetensors"  # untrained, 6-d image side for _MeanColour
    save_matcher(matcher, TextImageMatcher(SentenceEncoder(1000, 8, 8, 16), 6), {})

    class Uniform(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 7)

    clf = tmp_path / "clf.pt"
    torch.jit.script(Uniform()).save(str(clf))
    opts = EvalOptions(
        str(tiny_shapes),
        str(tmp_path / "ev"),
        str(model),
        num_samples=12,
        matcher=str(matcher),
        is_classifier=str(clf),
    )
    res = evaluate(opts, extractor=_MeanColour(), progress=False)
    assert 0 <= res["r_precision"] <= 1 and 0 <= res["r_precision_real"] <= 1
    assert res["r_precision_model"] == str(matcher)
    assert res["is"] == pytest.approx(1.0) and res["is_num_classes"] == 7  # uniform -> IS 1
    assert "is_real" not in res
    missing = EvalOptions(
        str(tiny_shapes), str(tmp_path / "ev2"), str(model), is_classifier=str(tmp_path / "no.pt")
    )
    with pytest.raises(MetricError, match=r"no\.pt"):
        evaluate(missing, extractor=_MeanColour(), progress=False)


def test_attribute_classifier_learns_real_renders_and_is_cached(tiny_shapes):
    import random

    from stackgan.data import shapes
    from stackgan.metrics import attributes as A

    rng = random.Random(0)
    attrs = [shapes.sample_attributes(rng) for _ in range(96)]
    imgs = torch.from_numpy(np.stack([shapes.render(a, 128) for a in attrs]))
    x = imgs.permute(0, 3, 1, 2).float() / 127.5 - 1
    net = A.train_classifier(x, attrs, epochs=20, batch=16, progress=False)
    acc = A.accuracy(A.predict(net, imgs), attrs)  # on its training images: fits the easy ones
    assert acc["background"] > 0.9 and acc["color"] > 0.5, acc
    # per dataset: trained once, then read from the cache beside the data
    first = A.dataset_classifier(tiny_shapes, progress=False)[1]
    assert first == A.dataset_classifier(tiny_shapes, progress=False)[1]
    with pytest.raises(MetricError, match=r"attributes\.jsonl"):
        A.dataset_classifier(tiny_shapes / "text", progress=False)
