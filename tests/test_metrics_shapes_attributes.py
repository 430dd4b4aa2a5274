"""metrics/shapes_attributes.py: the learned attribute judge of `shapes`."""

import numpy as np
import pytest
import torch

from stackgan.metrics.base import MetricError


def test_attribute_classifier_learns_real_renders_and_is_cached(tiny_shapes):
    import random

    from stackgan.data import shapes
    from stackgan.metrics import shapes_attributes as A

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
