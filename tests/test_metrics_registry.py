"""metrics/registry.py: one metric path for training and `stackgan eval`."""

from __future__ import annotations

import json

import pytest
import torch

from stackgan.metrics.base import MetricError
from stackgan.metrics.consistency import evaluate_sampler
from stackgan.metrics.options import MetricOptions, metric_captions, parse_metric_name
from stackgan.metrics.registry import calc_metric, headline, list_metrics, report_metric
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder
from stackgan.train import train

from .conftest import MeanColour, tiny_config


@pytest.fixture(scope="module")
def sampler(tiny_shapes):
    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    return Text2ImageSampler(build_generator(cfg), cfg, build_encoder("minilm"))


def test_registry_consistency_is_what_stackgan_consistency_measures(sampler, tiny_shapes):
    opts = MetricOptions(sampler, str(tiny_shapes), num_samples=6, seed=2)
    result = calc_metric("consistency", opts)
    judged = evaluate_sampler(sampler, tiny_shapes, num=6, seed=2, progress=False)
    assert result["metric"] == "consistency" and result["num_samples"] == 6
    assert result["results"]["consistency6_object"] == judged["object_color_acc"]
    assert result["results"]["consistency6_background"] == judged["background_acc"]
    both = (judged["object_color_acc"] + judged["background_acc"]) / 2
    assert next(iter(result["results"])) == "consistency6" and headline(result) == both
    names = {"fid", "is", "r_precision", "diversity", "consistency", "attributes"}
    assert names <= set(list_metrics())
    with pytest.raises(MetricError, match="unknown metric"):
        calc_metric("nope", opts)


def test_metric_names_carry_their_sample_count():
    assert parse_metric_name("fid") == ("fid", None)
    assert parse_metric_name("fid2k") == ("fid", 2000)
    assert parse_metric_name("is30k") == ("is", 30_000)
    assert parse_metric_name("r_precision512") == ("r_precision", 512)
    for bad in ("fid2m", "Fid", "fid0", "2k", "fid_"):
        with pytest.raises(MetricError, match="bad metric name"):
            parse_metric_name(bad)


def test_a_count_in_the_name_draws_its_own_images(sampler, tiny_shapes):
    net = MeanColour()
    opts = MetricOptions(sampler, str(tiny_shapes), num_samples=6, seed=1, detector=net)
    six = calc_metric("fid", opts)
    four = calc_metric("fid4", opts)
    assert six["num_samples"] == 6 and "fid6" in six["results"]
    assert four["num_samples"] == 4 and "fid4" in four["results"]
    assert four["metric"] == "fid4" and headline(four) == -four["results"]["fid4"]
    # the first four captions of the six: a smaller count is a prefix of a larger one
    assert metric_captions(opts)[0][:4] == opts.cache[("captions", 4)][0]


def test_fid_and_consistency_share_one_generation(sampler, tiny_shapes, tmp_path):
    net = MeanColour()
    opts = MetricOptions(sampler, str(tiny_shapes), num_samples=5, seed=1, detector=net)
    fid = calc_metric("fid", opts)["results"]["fid5"]
    calls = net.calls
    calc_metric("consistency", opts)  # reuses the images: no new generation, no new features
    assert net.calls == calls and fid >= 0
    opts.generated.clear()  # a new model: measured again, the same captions and noise
    assert calc_metric("fid", opts)["results"]["fid5"] == pytest.approx(fid)
    assert metric_captions(opts) is opts.cache[("captions", 5)]
    report_metric(calc_metric("fid", opts), tmp_path, step=7)
    (line,) = (tmp_path / "metric-fid.jsonl").read_text().splitlines()
    assert json.loads(line)["step"] == 7 and "fid5" in json.loads(line)["results"]


def test_training_writes_one_metric_file_per_metric(tiny_shapes, tmp_path):
    cfg = tiny_config(
        tiny_shapes, **{"train.total_iters": 2, "train.metric_ticks": 1, "train.metric_samples": 4}
    )
    train(cfg, tmp_path / "run")
    lines = (tmp_path / "run" / "metric-consistency.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["step"] for r in recs] == [1, 2]
    assert "consistency4_object" in recs[0]["results"] and recs[0]["num_samples"] == 4
    stats = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[0])
    assert stats["metric/consistency_object"] == recs[0]["results"]["consistency4_object"]


class _ThreeImages:
    """A split of three images with 3, 2 and 1 captions (no features needed here)."""

    def image_captions(self):
        return [["a0", "a1", "a2"], ["b0", "b1"], ["c0"]]


def test_more_samples_than_images_draw_further_captions_of_each(sampler, tmp_path):
    def captions(n):
        opts = MetricOptions(sampler, str(tmp_path), num_samples=n, seed=0)
        opts.cache["real"] = (None, _ThreeImages())
        caps, items = metric_captions(opts)
        assert items is None
        return caps

    seven = captions(7)
    assert len(seven) == 7
    # pass after pass, one caption of each image in order
    assert [c[0] for c in seven] == ["a", "b", "c", "a", "b", "c", "a"]
    assert seven[2] == seven[5] == "c0"
    # fewer samples keep the first pass's draw (the training metric's captions do not move)
    assert captions(2) == seven[:2] and captions(0) == seven[:3]


def test_training_runs_the_listed_metrics_and_keeps_the_best_by_the_first(
    tiny_shapes, tmp_path, monkeypatch
):
    from stackgan.checkpoint import load_checkpoint
    from stackgan.train import monitor

    monkeypatch.setattr(monitor, "InceptionFeatures", lambda device: MeanColour())
    extra = {"train.total_iters": 2, "train.metric_ticks": 1, "train.metric_samples": 4}
    cfg = tiny_config(tiny_shapes, **{"train.metrics": ["fid5", "consistency"]}, **extra)
    train(cfg, tmp_path / "run")
    fid = [json.loads(x) for x in (tmp_path / "run" / "metric-fid5.jsonl").read_text().splitlines()]
    assert [r["num_samples"] for r in fid] == [5, 5]
    assert (tmp_path / "run" / "metric-consistency.jsonl").exists()
    stats = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all("metric/fid5" in s and "metric/consistency_object" in s for s in stats)
    best = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")["metric_best"]
    assert best == {"score": -min(r["results"]["fid5"] for r in fid), "kind": "fid5"}


def test_metric_fid_is_a_deprecated_alias_for_fid_first():
    from stackgan.config import ConfigError, load_config
    from stackgan.train.monitor import metric_names

    def names(*overrides):
        return metric_names(load_config(None, ["data.root=/nonexistent", *overrides]))

    assert names() == []  # no judge for this folder: nothing unless asked
    assert names("train.metric_fid=true") == ["fid"]
    assert names("train.metrics=is,fid2k", "train.metric_fid=true") == ["is", "fid2k"]
    assert names("train.metrics=[is, consistency]", "train.metric_fid=true") == [
        "fid",
        "is",
        "consistency",
    ]
    with pytest.raises(ConfigError, match="not a metric name"):
        load_config(None, ["train.metrics=[FID]"])
