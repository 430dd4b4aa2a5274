"""metrics/judges.py: a dataset's judge plugs in through one registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stackgan.metrics import judges
from stackgan.metrics.judges import judge_for, judge_named, register_judge
from stackgan.metrics.options import MetricOptions
from stackgan.metrics.registry import calc_metric, headline
from stackgan.metrics.shapes_judge import ShapesJudge
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

from .conftest import tiny_config


class BrightJudge:
    """A second synthetic dataset's judge: a caption says "bright" or "dark", and an image is
    right when its mean brightness agrees."""

    name = "bright"
    class_mask = True

    def captions(self, root, split="test", num=0, seed=0):
        items = [("a bright picture", True, False), ("a dark picture", False, True)] * 3
        return items[: num or None]

    def score(self, images, items):
        right = [(im.mean() > 127) == truth for im, (_, truth, _) in zip(images, items)]
        return {"accuracy": float(np.mean(right)), "num_images": len(images)}

    def summary(self, detail):
        return detail["accuracy"], {"accuracy": detail["accuracy"]}

    def describe(self, image, truth):
        return (image.mean() > 127) == truth, "bright" if image.mean() > 127 else "dark"

    def attributes(self, images, items, root, progress=True):
        return {"generated": {"brightness": self.score(images, items)["accuracy"]}}

    def example_captions(self, num, exclude):
        return [c for c in ("a bright picture", "a dark picture") if c not in exclude][:num]


@pytest.fixture
def bright_root(tmp_path, monkeypatch):
    monkeypatch.setattr(judges, "_JUDGES", list(judges._JUDGES))  # unregistered afterwards
    register_judge("bright", lambda root: (root / "BRIGHT").is_file(), BrightJudge)
    (tmp_path / "BRIGHT").write_text("")
    return tmp_path


def test_shapes_has_its_judge_and_other_folders_none(tiny_shapes, tmp_path):
    assert isinstance(judge_for(tiny_shapes), ShapesJudge)
    assert isinstance(judge_named("shapes"), ShapesJudge)
    assert judge_for(tmp_path) is None and judge_named("birds") is None


def test_a_registered_judge_serves_the_metrics_matcher_and_page(bright_root, tiny_shapes):
    from stackgan.metrics.text_retrieval import mask_labels
    from stackgan.serve.models import example_captions

    assert isinstance(judge_for(bright_root), BrightJudge)
    assert example_captions("bright", 2) == ["a bright picture", "a dark picture"]

    class Split:
        root, has_classes, class_ids = bright_root, True, torch.tensor([1, 2])

    assert mask_labels(Split()) is Split.class_ids  # its judge says classes mask negatives
    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    sampler = Text2ImageSampler(build_generator(cfg), cfg, build_encoder("minilm"))
    opts = MetricOptions(sampler, str(bright_root), num_samples=4, seed=0)
    result = calc_metric("consistency", opts)
    assert list(result["results"]) == ["consistency4", "consistency4_accuracy"]
    assert headline(result) == result["results"]["consistency4"]
    detail = calc_metric("attributes", opts)["results"]["attributes4_detail"]
    assert set(detail["generated"]) == {"brightness"}


def test_consistency_without_a_judge_says_so(tmp_path):
    from stackgan.metrics.consistency import require_judge

    with pytest.raises(ValueError, match="no consistency judge"):
        require_judge(Path(tmp_path))
