"""One metric path for training and ``stackgan eval``, after StyleGAN2-ADA's ``metric_main``:
metrics are functions registered by name (:func:`register_metric`) that take a
:class:`MetricOptions` and return named scalars; :func:`calc_metric` runs one and
:func:`report_metric` appends the result as a JSON line to ``run_dir/metric-<name>.jsonl``.

Both draw the same captions (:func:`metric_captions`: on ``shapes`` one per test image that
names its background, else one per test image at random, seeded) and generate through
:func:`stackgan.metrics.generation.generate_images`, so a training run's ``fid256`` and
``stackgan eval --num-samples 256`` measure the same thing. Result names carry the sample count
(``fid256``, ``consistency256_object``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.data.shapes import is_shapes_root
from stackgan.metrics.base import MetricError
from stackgan.metrics.consistency import score, test_captions
from stackgan.metrics.features import InceptionFeatures, extract_features
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.generation import GEN_BATCH, generate_images
from stackgan.metrics.real import dataset_features
from stackgan.utils.images import to_uint8

MetricFn = Callable[["MetricOptions"], dict[str, float]]
_METRICS: dict[str, MetricFn] = {}


@dataclass
class MetricOptions:
    """What a metric needs: the model, the reference data and how many samples to draw.

    detector: the Inception pool3 network (built on first use and kept, with the real features,
        in ``cache``, so a training run pays for them once).
    on_batch: sees every stage of each generated chunk (``stackgan eval``'s report).
    cache: what does not change with the model: the captions, the real features.
    generated: the images (and features) of the current model, shared by the metrics of one
        evaluation; a training run clears it before each measurement.
    """

    sampler: Any
    data_root: str
    split: str = "test"
    num_samples: int = 0  # 0: one per image of the split; more: further captions of each
    seed: int = 0
    progress: bool = False
    detector: torch.nn.Module | None = None
    on_batch: Callable[[list[torch.Tensor]], None] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    generated: dict[str, Any] = field(default_factory=dict)


def register_metric(fn: MetricFn) -> MetricFn:
    """Register ``fn`` under its name (``fid``, ``consistency``)."""
    _METRICS[fn.__name__] = fn
    return fn


def list_metrics() -> list[str]:
    return sorted(_METRICS)


def calc_metric(name: str, opts: MetricOptions) -> dict[str, Any]:
    """Run the metric ``name``: ``{"metric", "results", "num_samples", "seed", "seconds"}``."""
    if name not in _METRICS:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(list_metrics())}")
    t0 = time.time()
    results = _METRICS[name](opts)
    return {
        "metric": name,
        "results": results,
        "num_samples": len(metric_captions(opts)[0]),
        "seed": opts.seed,
        "seconds": round(time.time() - t0, 2),
    }


def report_metric(result: dict[str, Any], run_dir: str | Path, **extra: Any) -> None:
    """Append ``result`` (and ``extra``, e.g. the step) to ``run_dir/metric-<name>.jsonl``."""
    path = Path(run_dir) / f"metric-{result['metric']}.jsonl"
    with open(path, "a") as f:
        f.write(json.dumps({**extra, **result}) + "\n")


def metric_captions(opts: MetricOptions) -> tuple[list[str], list[Any] | None]:
    """The captions every metric generates from (drawn once per options, then cached), and on
    ``shapes`` the (caption, attributes, compositional) items behind them. For an unconditional
    model, one empty string per image to generate."""
    if "captions" not in opts.cache:
        root = Path(opts.data_root)
        items: list[Any] | None = None
        if not opts.sampler.conditional:
            # an unconditional model takes no text: one image per slot ("" marks it), as many
            # as the split has images unless num_samples says otherwise
            caps = [""] * (opts.num_samples or len(_split(opts)))
        elif is_shapes_root(root):
            items = test_captions(root, opts.split, opts.num_samples, opts.seed)
            caps = [c for c, _, _ in items]
        else:
            rng = random.Random(opts.seed)
            per_image = _split(opts).image_captions()
            caps = [rng.choice(c) for c in per_image]
            # more samples than images (the papers' FID on CUB uses 30,000): further passes,
            # another random caption of each image per pass
            while opts.num_samples > len(caps):
                caps += [rng.choice(c) for c in per_image]
            caps = caps[: opts.num_samples or None]
        if len(caps) < 2:
            raise MetricError(f"need at least 2 {opts.split} captions under {opts.data_root}")
        opts.cache["captions"] = (caps, items)
    out: tuple[list[str], list[Any] | None] = opts.cache["captions"]
    return out


def _split(opts: MetricOptions) -> Any:
    """The real images of the split and their features under the detector (cached)."""
    if "real" not in opts.cache:
        if opts.detector is None:
            opts.detector = InceptionFeatures(device=opts.sampler.device)
        opts.cache["real"] = dataset_features(
            opts.data_root, opts.split, opts.sampler.resolution, opts.detector, progress=False
        )
    return opts.cache["real"][1]


def _generated(opts: MetricOptions, need_features: bool) -> dict[str, Any]:
    """One image per caption of :func:`metric_captions` (uint8, final stage) and, when a metric
    needs them or a detector is set, their pool3 features; kept in ``opts.generated`` so that
    the metrics of one evaluation share one generation (clear it when the model changes)."""
    gen = opts.generated
    if "images" in gen and (not need_features or "features" in gen):
        return gen
    gen.clear()
    captions, _ = metric_captions(opts)
    finals: list[np.ndarray] = []

    def batches() -> Any:
        for images in generate_images(
            opts.sampler, captions, opts.seed, GEN_BATCH, opts.on_batch, opts.progress
        ):
            finals.extend(to_uint8(images))
            yield images

    if need_features or opts.detector is not None:
        _split(opts)
        assert opts.detector is not None
        gen["features"] = extract_features(opts.detector, batches(), len(captions), opts.progress)
    else:
        for _ in batches():
            pass
    gen["images"] = finals
    return gen


@register_metric
def fid(opts: MetricOptions) -> dict[str, float]:
    """FID of one image per caption against the split's real images at the model's resolution
    (Inception pool3, real features cached)."""
    gen = _generated(opts, need_features=True)
    n = len(metric_captions(opts)[0])
    return {f"fid{n}": fid_from_features(opts.cache["real"][0], gen["features"])}


@register_metric
def consistency(opts: MetricOptions) -> dict[str, float]:
    """On ``shapes``: how often the generated object has the caption's colour and the image
    the caption's background (palette judge), overall and by object size."""
    captions, items = metric_captions(opts)
    if items is None:
        raise MetricError(f"{opts.data_root} is not a shapes dataset: no consistency judge")
    images = _generated(opts, need_features=False)["images"]
    res = score(images, [a for _, a, _ in items], [c for _, _, c in items])
    n = len(captions)
    out = {
        f"consistency{n}_object": float(res["object_color_acc"]),
        f"consistency{n}_background": float(res["background_acc"]),
    }
    for size, acc in res["object_color_acc_by_size"].items():
        out[f"consistency{n}_object_{size}"] = float(acc)
    return out
