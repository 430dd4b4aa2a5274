"""metrics/fd_effnet.py: the second distance (Fréchet distance under EfficientNet-Lite0)."""

from __future__ import annotations

import numpy as np
import torch

from stackgan.metrics.fd_effnet import EfficientNetPooled, effnet_distance, images_to_batches
from stackgan.metrics.options import MetricOptions, real_split
from stackgan.metrics.registry import calc_metric, headline, list_metrics
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

from .conftest import MeanColour, tiny_config


def test_pooled_features_are_320_wide_at_any_size():
    net = EfficientNetPooled()
    for size in (64, 224, 256):
        x = torch.rand(2, 3, size, size) * 2 - 1
        feats = net(x)
        assert feats.shape == (2, 320) and torch.isfinite(feats).all()
    # images of one batch give what they give alone (no batch statistics: frozen, eval)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(net(x)[1:2], net(x[1:2]), atol=1e-5, rtol=1e-4)


def test_images_to_batches_maps_uint8_to_unit_range():
    imgs = [np.full((8, 8, 3), v, np.uint8) for v in (0, 255, 128)]
    (b,) = list(images_to_batches(imgs))
    assert b.shape == (3, 3, 8, 8)
    assert b[0].max() == -1.0 and b[1].min() == 1.0 and abs(float(b[2].mean()) - 0.0039) < 1e-3


def test_real_images_are_near_themselves_and_far_from_noise(tiny_shapes):
    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    sampler = Text2ImageSampler(build_generator(cfg), cfg, build_encoder("minilm"))
    size = sampler.resolution
    opts = MetricOptions(sampler, str(tiny_shapes), num_samples=4, seed=1, detector=MeanColour())
    assert "fd_effnet" in list_metrics()
    result = calc_metric("fd_effnet4", opts)
    assert list(result["results"]) == ["fd_effnet4"] and result["results"]["fd_effnet4"] > 0
    assert headline(result) == -result["results"]["fd_effnet4"]  # lower is better
    # the real test images against themselves: ~0; against uniform noise: far
    ds = real_split(opts)[1]
    real = [
        ((ds.images_at(torch.tensor([i]), [size], augment=False)[0][0] + 1) * 127.5)
        .round()
        .clamp(0, 255)
        .byte()
        .permute(1, 2, 0)
        .numpy()
        for i in range(len(ds))
    ]
    same, n = effnet_distance(str(tiny_shapes), "test", size, real)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    far, _ = effnet_distance(str(tiny_shapes), "test", size, noise)
    assert far > 1.0 and abs(same) < 1e-2 * far
