"""What every metric shares (StyleGAN2-ADA's ``metric_utils``): :class:`MetricOptions`, the
metric-name grammar, the captions the metrics generate from, the real images' features and the
generated images, each computed once per evaluation and kept in the options' caches.

Metric names carry their sample count: ``<metric>[<count>]`` with the count in digits and an
optional ``k`` for thousands (``fid2k`` = FID of 2,000 images, ``kid512``, ``is30k``,
``consistency256``). A name without a count (``fid``) uses :attr:`MetricOptions.num_samples`
(``train.metric_samples`` in training, ``--num-samples`` in ``stackgan eval``), except where the
metric has a count of its own (``diversity``: 20 captions).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stackgan.metrics.base import MetricError
from stackgan.metrics.features import InceptionFeatures, extract_features
from stackgan.metrics.generation import GEN_BATCH, generate_images
from stackgan.metrics.judges import Judge, JudgedCaption, judge_for
from stackgan.metrics.real import dataset_features
from stackgan.sampling import Sampler
from stackgan.utils.images import to_uint8

_NAME = re.compile(r"(?P<base>[a-z_]*[a-z])(?P<count>[1-9][0-9]*k?)?")


def parse_metric_name(name: str) -> tuple[str, int | None]:
    """``"fid2k"`` -> ``("fid", 2000)``, ``"kid512"`` -> ``("kid", 512)``, ``"fid"`` ->
    ``("fid", None)`` (the options' sample count)."""
    m = _NAME.fullmatch(name)
    if m is None:
        raise MetricError(f"bad metric name {name!r}: a metric and a count, e.g. fid, fid2k")
    count = m["count"]
    if count is None:
        return m["base"], None
    return m["base"], int(count[:-1]) * 1000 if count.endswith("k") else int(count)


@dataclass
class MetricOptions:
    """What a metric needs: the model, the reference data and how many samples to draw.

    sampler: the model under test (any :class:`~stackgan.sampling.Sampler`).
    data_root, split: the dataset whose ``split`` images are the reference.
    num_samples: images to generate, one per caption (0: one per image of the split; more:
        further captions of each image); a metric name's count overrides it.
    detector: the Inception pool3 network (built on first use and kept in ``cache``, with the
        real features, so a training run pays for them once).
    matcher: ``r_precision``'s trained text-image model (``stackgan text-encoder train``);
        "" : the generator's own text encoder when it is one.
    is_classifier: ``is``'s classifier instead of the dataset's pool3 head (a TorchScript
        module or a pytorch-fid ``.pth``).
    max_train: real training images for the IS head and the nearest neighbours (0: all).
    cache: what does not change with the model: captions, real features, the detector.
    generated: per sample count, the images (and features) of the current model, shared by
        the metrics of one evaluation; a training run clears it before each measurement.
    """

    sampler: Sampler
    data_root: str
    split: str = "test"
    num_samples: int = 0
    seed: int = 0
    progress: bool = False
    detector: torch.nn.Module | None = None
    matcher: str = ""
    is_classifier: str = ""
    max_train: int = 0
    cache: dict[Any, Any] = field(default_factory=dict)
    generated: dict[int, dict[str, Any]] = field(default_factory=dict)


def judge(opts: MetricOptions) -> Judge | None:
    """The dataset's judge when the model takes text (a judge reads captions), else None."""
    if not opts.sampler.conditional:
        return None
    if "judge" not in opts.cache:
        opts.cache["judge"] = judge_for(opts.data_root)
    found: Judge | None = opts.cache["judge"]
    return found


def metric_captions(opts: MetricOptions) -> tuple[list[str], list[JudgedCaption] | None]:
    """The ``opts.num_samples`` captions the metrics generate from (drawn once per count, then
    cached; a smaller count draws the first captions of a larger one) and, on a dataset with a
    judge, the (caption, truth, compositional) items behind them. For an unconditional model,
    one empty string per image to generate."""
    key = ("captions", opts.num_samples)
    if key not in opts.cache:
        items: list[JudgedCaption] | None = None
        dataset_judge = judge(opts)
        if not opts.sampler.conditional:
            # an unconditional model takes no text: one image per slot ("" marks it), as many
            # as the split has images unless num_samples says otherwise
            caps = [""] * (opts.num_samples or len(real_split(opts)[1]))
        elif dataset_judge is not None:
            # captions the judge can check (on shapes: ones that name the background)
            items = dataset_judge.captions(opts.data_root, opts.split, opts.num_samples, opts.seed)
            caps = [c for c, _, _ in items]
        else:
            rng = random.Random(opts.seed)
            per_image = real_split(opts)[1].image_captions()
            caps = [rng.choice(c) for c in per_image]
            # more samples than images (the papers' FID on CUB uses 30,000): further passes,
            # another random caption of each image per pass
            while opts.num_samples > len(caps):
                caps += [rng.choice(c) for c in per_image]
            caps = caps[: opts.num_samples or None]
        if len(caps) < 2:
            raise MetricError(f"need at least 2 {opts.split} captions under {opts.data_root}")
        opts.cache[key] = (caps, items)
    out: tuple[list[str], list[JudgedCaption] | None] = opts.cache[key]
    return out


def detector(opts: MetricOptions) -> torch.nn.Module:
    """The feature network: the options' own, or the standard Inception built once."""
    if opts.detector is not None:
        return opts.detector
    if "detector" not in opts.cache:
        opts.cache["detector"] = InceptionFeatures(device=opts.sampler.device)
    net: torch.nn.Module = opts.cache["detector"]
    return net


def real_split(opts: MetricOptions) -> tuple[np.ndarray, Any]:
    """The features of the split's real images under the detector, and the dataset (cached)."""
    if "real" not in opts.cache:
        opts.cache["real"] = dataset_features(
            opts.data_root, opts.split, opts.sampler.resolution, detector(opts), progress=False
        )
    out: tuple[np.ndarray, Any] = opts.cache["real"]
    return out


def train_split(opts: MetricOptions) -> tuple[np.ndarray, Any]:
    """The features of the real training images (``max_train`` of them) and their dataset."""
    if "train" not in opts.cache:
        opts.cache["train"] = dataset_features(
            opts.data_root,
            "train",
            opts.sampler.resolution,
            detector(opts),
            max_images=opts.max_train,
            progress=opts.progress,
        )
    out: tuple[np.ndarray, Any] = opts.cache["train"]
    return out


def generated(opts: MetricOptions, need_features: bool) -> dict[str, Any]:
    """One image per caption of :func:`metric_captions` (uint8, final stage) and, when a metric
    needs them or a detector is at hand, their pool3 features; kept in ``opts.generated`` so
    that the metrics of one evaluation share one generation (clear it when the model changes).
    """
    gen = opts.generated.setdefault(opts.num_samples, {})
    if "images" in gen and (not need_features or "features" in gen):
        return gen
    gen.clear()
    captions, _ = metric_captions(opts)
    finals: list[np.ndarray] = []

    def batches() -> Iterator[torch.Tensor]:
        for images in generate_images(
            opts.sampler, captions, opts.seed, GEN_BATCH, progress=opts.progress
        ):
            finals.extend(to_uint8(images))
            yield images

    if need_features or opts.detector is not None or "detector" in opts.cache:
        real_split(opts)  # the detector and the reference before the (long) generation
        net = detector(opts)
        gen["features"] = extract_features(net, batches(), len(captions), opts.progress)
    else:
        for _ in batches():
            pass
    gen["images"] = finals
    return gen
