"""metrics/evaluate.py and `stackgan eval`: metrics.json, the report, the history."""

import numpy as np
import pytest
import torch

from stackgan.metrics.base import MetricError

from .conftest import MeanColour


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
        extractor=MeanColour(),
        progress=False,
    )
    assert res["resolution"] == 32 and res["num_samples"] >= 2
    n = res["num_samples"]
    fid_key = f"fid{n}"
    assert res[fid_key] > 0 and res[f"diversity{min(n, 20)}"] >= 0
    assert res[f"is{n}"] >= 1.0 and 1.0 <= res["is_real"] <= res["is_num_classes"]
    assert {f"consistency{n}", f"consistency{n}_object", f"consistency{n}_background"} <= set(res)
    assert res[f"attributes{n}"] >= 0
    attrs = res[f"attributes{n}_detail"]  # the learned per-attribute judge, with its real scale
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
    assert res[f"diversity{min(n, 20)}_ca_off"] >= 0
    # each metric also went to OUT/metric-<name>.jsonl, as a training run writes them
    for name in ("fid", "is", "diversity", "consistency", "attributes"):
        (line,) = (out / f"metric-{name}.jsonl").read_text().splitlines()
        assert json.loads(line)["metric"] == name and json.loads(line)["model"] == str(model)
    assert not (out / "metric-r_precision.jsonl").exists()  # no matcher: skipped
    evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12),
        extractor=MeanColour(),
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
        pytest.skip(
            "browser test skipped: chromium not installed (`make browser` installs Debian's "
            "chromium with apt-get when run as root; or install it yourself)"
        )
    cfg = tiny_config(tiny_shapes, stage=2)
    model = tmp_path / "model.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "ev"
    evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=12),
        extractor=MeanColour(),
        progress=False,
    )
    loaded, total = check_report(out / "report.html", out / "report.png")
    assert total >= 3 and loaded == total
    from PIL import Image

    with Image.open(out / "report.png") as shot:
        assert shot.size[0] == 1280
        px = np.asarray(shot.convert("RGB"))
    assert px.std() > 10  # rendered content, not a blank page


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
    res = evaluate(opts, extractor=MeanColour(), progress=False)
    n = res["num_samples"]
    assert 0 <= res[f"r_precision{n}"] <= 1 and 0 <= res["r_precision_real"] <= 1
    assert res["r_precision_model"] == str(matcher)
    assert res[f"is{n}"] == pytest.approx(1.0) and res["is_num_classes"] == 7  # uniform: IS 1
    assert "is_real" not in res
    missing = EvalOptions(
        str(tiny_shapes), str(tmp_path / "ev2"), str(model), is_classifier=str(tmp_path / "no.pt")
    )
    with pytest.raises(MetricError, match=r"no\.pt"):
        evaluate(missing, extractor=MeanColour(), progress=False)


def test_eval_of_an_unconditional_model_measures_fid_is_and_nearest_images(tiny_shapes, tmp_path):
    """An unconditional StackGAN++ gets FID and IS against the split's images and the nearest
    training images figure; nothing that needs text (R-precision, diversity per caption,
    text and z interpolation, the CA figures)."""
    from stackgan.checkpoint import export_generator
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    cfg = tiny_config(
        tiny_shapes, **{"model.version": "v2", "model.ngf": 8, "model.conditional": False}
    )
    model = tmp_path / "uncond.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "eval"
    res = evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model), num_samples=9),
        extractor=MeanColour(),
        progress=False,
    )
    assert res["num_samples"] == 9 and res["fid9"] > 0 and res["is9"] >= 1.0
    assert not [k for k in res if k.startswith(("r_prec", "diversity", "consist", "attrib"))]
    assert sorted(p.name for p in out.glob("fig-*.png")) == [
        "fig-nearest-neighbours.png",
        "fig-stages.png",
    ]
    assert "Text interpolation" not in (out / "report.html").read_text()
    # without num_samples: one image per test image, as for a text-conditioned model
    res = evaluate(
        EvalOptions(str(tiny_shapes), str(out), str(model)), extractor=MeanColour(), progress=False
    )
    assert res["num_samples"] == res["num_real"]


def test_eval_runs_the_metrics_it_is_given(tiny_shapes, tmp_path, monkeypatch):
    """--metrics: the registry's names with their counts; one that does not apply, asked for
    by name, is an error rather than a silent gap."""
    from click.testing import CliRunner

    from stackgan.checkpoint import export_generator
    from stackgan.cli import main
    from stackgan.metrics import evaluate as E
    from stackgan.metrics.base import MetricUnavailableError
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes)
    model = tmp_path / "model.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    out = tmp_path / "ev"
    opts = EvalOptions(str(tiny_shapes), str(out), str(model), metrics=("fid6", "consistency"))
    res = evaluate(opts, extractor=MeanColour(), progress=False)
    n = res["num_samples"]
    assert "fid6" in res and f"consistency{n}" in res and f"is{n}" not in res
    assert json_lines(out / "metric-fid6.jsonl")[0]["num_samples"] == 6
    only_r = EvalOptions(str(tiny_shapes), str(out), str(model), metrics=("r_precision",))
    with pytest.raises(MetricUnavailableError, match="text-image model"):
        evaluate(only_r, extractor=MeanColour(), progress=False)
    monkeypatch.setattr(E, "feature_network", lambda weights, device: MeanColour())
    args = ["eval", "--data", str(tiny_shapes), "--out", str(out), "--model", str(model)]
    r = CliRunner().invoke(main, [*args, "--metrics", "fid,nope"])
    assert r.exit_code == 2 and "unknown metric 'nope'" in r.output
    r = CliRunner().invoke(main, [*args, "--metrics", "r_precision"])
    assert r.exit_code == 1 and "MetricUnavailableError: r_precision: no text-image" in r.output


def json_lines(path):
    import json

    return [json.loads(x) for x in path.read_text().splitlines()]


def test_eval_scores_an_earlier_stage(tiny_shapes, tmp_path, monkeypatch):
    """--resolution: a v1 Stage-II model's Stage-I and a StackGAN++ tree's first branch are
    scored as models of their own size, with the whole model's images of that stage."""
    from click.testing import CliRunner

    from stackgan.checkpoint import export_generator
    from stackgan.cli import main
    from stackgan.metrics import evaluate as E
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.models.registry import build_generator
    from stackgan.sampling import Text2ImageSampler

    from .conftest import tiny_config

    for name, cfg, sizes in (
        ("v1", tiny_config(tiny_shapes, stage=2), [16, 32]),
        ("v2", tiny_config(tiny_shapes, **{"model.version": "v2", "model.ngf": 8}), [16, 32, 64]),
    ):
        model = tmp_path / f"{name}.safetensors"
        export_generator(model, build_generator(cfg).state_dict(), cfg)
        whole = Text2ImageSampler.from_pretrained(model)
        assert whole.stage_sizes == sizes and whole.resolution == sizes[-1]
        first = whole.up_to(sizes[0])
        assert first.stage_sizes == sizes[:1] and first.resolution == sizes[0]
        assert whole.resolution == sizes[-1]  # the cut is a copy
        caps = ["a big red star on a sky blue background"]
        full, cut = whole(caps, seed=3, output_type="pt"), first(caps, seed=3, output_type="pt")
        assert len(cut.stage_images) == 1 and torch.equal(cut.images, full.stage_images[0])
        assert tuple(cut.images.shape[-2:]) == (sizes[0], sizes[0])
        with pytest.raises(ValueError, match=f"stages are {', '.join(map(str, sizes))} px"):
            whole.up_to(24)
        out = tmp_path / f"ev-{name}"
        res = evaluate(
            EvalOptions(str(tiny_shapes), str(out), str(model), metrics=("fid6",), resolution=16),
            extractor=MeanColour(),
            progress=False,
        )
        assert res["resolution"] == 16 and res["fid6"] > 0
    monkeypatch.setattr(E, "feature_network", lambda weights, device: MeanColour())
    args = ["eval", "--data", str(tiny_shapes), "--out", str(out), "--model", str(model)]
    r = CliRunner().invoke(main, [*args, "--metrics", "fid6", "--resolution", "24"])
    assert r.exit_code == 1 and "--resolution 24: this model's stages are 16, 32, 64 px" in r.output
    assert "Traceback" not in r.output
