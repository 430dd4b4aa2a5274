"""One metric path for training and ``stackgan eval``, after StyleGAN2-ADA's ``metric_main``.

Every metric is a function registered by name (:func:`register_metric`) that takes a
:class:`~stackgan.metrics.options.MetricOptions` and returns named results; :func:`calc_metric`
runs one by name, with its sample count (``fid2k``: see :mod:`stackgan.metrics.options`), and
:func:`report_metric` appends the result as a JSON line to ``<dir>/metric-<name>.jsonl``, the
same way for a training run and for ``stackgan eval``. Adding a metric is a module with its
computation and one registered function here.

Results: the first key is the metric's headline (what a training run's model-best follows, in
the registered direction) and is the metric's base name with the number of images measured
(``fid983``, ``consistency256``); further keys extend it (``is983_std``) or, for the same
measure on real images, are ``<base>_real`` (``is_real``). Values are numbers, or nested dicts
of detail for the report. Every metric draws its images from the same captions and noise
(:func:`stackgan.metrics.options.generated`), so one generation serves a whole evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stackgan.metrics.base import MetricError, MetricUnavailableError
from stackgan.metrics.diversity import DIVERSITY_CAPTIONS, diversity
from stackgan.metrics.fd_effnet import effnet_distance
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.inception_score import (
    PAPER_SPLITS,
    UserClassifier,
    head_probabilities,
    inception_score,
    train_head,
)
from stackgan.metrics.kid import kernel_inception_distance
from stackgan.metrics.options import (
    MetricOptions,
    detector,
    generated,
    judge,
    metric_captions,
    parse_metric_name,
    real_split,
    train_split,
)
from stackgan.metrics.r_precision import r_precision as r_precision_score
from stackgan.text.trainable import TrainedTextEncoder

MetricFn = Callable[[MetricOptions], dict[str, Any]]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its function, which way is better for its headline, whether it
    reads Inception features of the images (a training run then builds the network up front),
    and its own default sample count (None: the options' ``num_samples``)."""

    fn: MetricFn
    higher_is_better: bool
    features: bool = True
    default_count: int | None = None


_METRICS: dict[str, MetricSpec] = {}


def register_metric(
    higher_is_better: bool,
    features: bool = True,
    default_count: int | None = None,
    name: str | None = None,
) -> Callable[[MetricFn], MetricFn]:
    """Register the decorated function under ``name``, by default its own (``fid``)."""

    def register(fn: MetricFn) -> MetricFn:
        _METRICS[name or fn.__name__] = MetricSpec(fn, higher_is_better, features, default_count)
        return fn

    return register


def list_metrics() -> list[str]:
    return sorted(_METRICS)


def metric_spec(name: str) -> tuple[str, int | None, MetricSpec]:
    """``"fid2k"`` -> ("fid", 2000, its spec); unknown metrics raise :class:`MetricError`."""
    base, count = parse_metric_name(name)
    if base not in _METRICS:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(list_metrics())}")
    return base, count, _METRICS[base]


def calc_metric(name: str, opts: MetricOptions) -> dict[str, Any]:
    """Run the metric ``name`` (with its count, e.g. ``fid2k``) ->
    ``{"metric", "results", "num_samples", "seed", "seconds"}``."""
    _, count, spec = metric_spec(name)
    num = count if count is not None else spec.default_count
    # the caches are shared: a count of its own draws its own captions and images
    sub = opts if num is None else dataclasses.replace(opts, num_samples=num)
    t0 = time.time()
    results = spec.fn(sub)
    return {
        "metric": name,
        "results": results,
        "num_samples": len(metric_captions(sub)[0]),
        "seed": opts.seed,
        "seconds": round(time.time() - t0, 2),
    }


def report_metric(result: dict[str, Any], run_dir: str | Path, **extra: Any) -> None:
    """Append ``result`` (and ``extra``, e.g. the step) to ``run_dir/metric-<name>.jsonl``."""
    path = Path(run_dir) / f"metric-{result['metric']}.jsonl"
    with open(path, "a") as f:
        f.write(json.dumps({**extra, **result}) + "\n")


def headline(result: dict[str, Any]) -> float:
    """The score a run keeps its best model by, higher is better: the first result, negated
    for metrics where lower is better."""
    _, _, spec = metric_spec(result["metric"])
    value = float(next(iter(result["results"].values())))
    return value if spec.higher_is_better else -value


# ----------------------------------------------------------------------------------------------
# The metrics


@register_metric(higher_is_better=False)
def fid(opts: MetricOptions) -> dict[str, Any]:
    """FID of one image per caption against the split's real images at the model's resolution
    (Inception pool3, real features cached)."""
    gen = generated(opts, need_features=True)
    n = len(gen["features"])
    return {f"fid{n}": fid_from_features(real_split(opts)[0], gen["features"])}


@register_metric(higher_is_better=False)
def kid(opts: MetricOptions) -> dict[str, Any]:
    """Kernel Inception Distance of one image per caption against the split's real images
    (the FID features; mean and spread over 100 subsets)."""
    gen = generated(opts, need_features=True)
    n = len(gen["features"])
    mean, std = kernel_inception_distance(real_split(opts)[0], gen["features"], seed=opts.seed)
    return {f"kid{n}": mean, f"kid{n}_std": std}


@register_metric(higher_is_better=False, features=False)
def fd_effnet(opts: MetricOptions) -> dict[str, Any]:
    """A second distance: the Fréchet distance of one image per caption against the split's
    real images under EfficientNet-Lite0 features instead of Inception's (needs the
    ``projected`` extra's weights)."""
    images = generated(opts, need_features=False)["images"]
    dist, _ = effnet_distance(
        opts.data_root, opts.split, opts.sampler.resolution, images, opts.progress
    )
    return {f"fd_effnet{len(images)}": dist}


@register_metric(higher_is_better=True, name="is")  # (`is` is a Python keyword)
def inception(opts: MetricOptions) -> dict[str, Any]:
    """Inception Score (10 splits) under the user's classifier, or under the dataset's pool3
    head trained on the real training images, with the real test images' IS beside it."""
    gen = generated(opts, need_features=True)
    fake, real = gen["features"], real_split(opts)[0]
    n = len(fake)
    order = np.random.default_rng(opts.seed).permutation(n)  # IS splits mix captions
    splits = min(PAPER_SPLITS, n, len(real))  # 10 as the paper, fewer for tiny runs
    if opts.is_classifier:
        probs = UserClassifier(opts.is_classifier, str(opts.sampler.device)).probabilities(
            np.stack(gen["images"])[order]
        )
        mean, std = inception_score(probs, splits)
        return {
            f"is{n}": mean,
            f"is{n}_std": std,
            "is_classifier": str(opts.is_classifier),
            "is_num_classes": int(probs.shape[1]),
            "is_splits": splits,
        }
    train, train_ds = train_split(opts)
    labels = train_ds.class_ids.numpy() if train_ds.has_classes else np.zeros(0)
    if len(np.unique(labels)) < 2:
        raise MetricUnavailableError("is: the training images have no classes for the IS head")
    head = train_head(train, labels, seed=opts.seed)
    mean, std = inception_score(head_probabilities(head, fake[order]), splits)
    return {
        f"is{n}": mean,
        f"is{n}_std": std,
        "is_real": inception_score(head_probabilities(head, real), splits)[0],
        "is_num_classes": len(np.unique(labels)),
        "is_splits": splits,
    }


@register_metric(higher_is_better=True)
def r_precision(opts: MetricOptions) -> dict[str, Any]:
    """AttnGAN's R-precision of the generated images (each against its caption and 99 others)
    under a trained text-image model, with the real test images and their first captions
    under the same model beside it."""
    if not opts.sampler.conditional:
        raise MetricUnavailableError("r_precision: the model takes no text")
    own = opts.sampler.encoder
    enc = TrainedTextEncoder(opts.matcher) if opts.matcher else own
    if not isinstance(enc, TrainedTextEncoder):
        raise MetricUnavailableError("r_precision: no text-image model (give a matcher)")
    captions, _ = metric_captions(opts)
    fake = generated(opts, need_features=True)["features"]
    real, test_ds = real_split(opts)
    n = len(fake)
    where = str(enc.path) if enc.path is not None else "the model's own (embedded) encoder"
    mean, std = r_precision_score(
        enc.encode_images(fake).double().numpy(),
        enc.encode(captions).double().numpy(),
        seed=opts.seed,
    )
    firsts = [caps[0] for caps in test_ds.image_captions()]
    real_mean, _ = r_precision_score(
        enc.encode_images(real).double().numpy(),
        enc.encode(firsts).double().numpy(),
        seed=opts.seed,
    )
    return {
        f"r_precision{n}": mean,
        f"r_precision{n}_std": std,
        "r_precision_real": real_mean,
        "r_precision_model": where,
    }


@register_metric(higher_is_better=True, default_count=DIVERSITY_CAPTIONS, name="diversity")
def sample_diversity(opts: MetricOptions) -> dict[str, Any]:
    """Mean pairwise pool3 distance between 4 samples of each caption, with Conditioning
    Augmentation on and off (``_ca_off``: the paper's ablation)."""
    if not opts.sampler.conditional:
        raise MetricUnavailableError("diversity: the model takes no text (no samples per caption)")
    captions, _ = metric_captions(opts)
    emb = opts.sampler.encode_text(captions)
    n, net = len(captions), detector(opts)
    return {
        f"diversity{n}": diversity(opts.sampler, emb, net, opts.seed),
        f"diversity{n}_ca_off": diversity(opts.sampler, emb, net, opts.seed, ca_noise=False),
    }


@register_metric(higher_is_better=True, features=False)
def consistency(opts: MetricOptions) -> dict[str, Any]:
    """Text-image consistency under the dataset's judge (on ``shapes``: object colour and
    background by palette statistics, overall, by object size and on held-out pairs); the
    headline is the judge's (on ``shapes`` the mean of object colour and background)."""
    dataset_judge = judge(opts)
    captions, items = metric_captions(opts)
    if dataset_judge is None or items is None:
        raise MetricUnavailableError(f"consistency: {opts.data_root} has no judge for text")
    images = generated(opts, need_features=False)["images"]
    overall, parts = dataset_judge.summary(dataset_judge.score(images, items))
    n = len(captions)
    return {f"consistency{n}": overall, **{f"consistency{n}_{k}": v for k, v in parts.items()}}


@register_metric(higher_is_better=True, features=False)
def attributes(opts: MetricOptions) -> dict[str, Any]:
    """Per-attribute consistency under the dataset's learned judge (on ``shapes``: colour,
    background, shape, size, position, pattern by a classifier trained on the real renders),
    with the classifier's accuracy on the real test images for scale."""
    dataset_judge = judge(opts)
    captions, items = metric_captions(opts)
    if dataset_judge is None or items is None:
        raise MetricUnavailableError(f"attributes: {opts.data_root} has no judge for text")
    images = generated(opts, need_features=False)["images"]
    detail = dataset_judge.attributes(images, items, opts.data_root, opts.progress)
    n = len(captions)
    return {
        f"attributes{n}": float(np.mean(list(detail["generated"].values()))),
        f"attributes{n}_detail": detail,
    }
