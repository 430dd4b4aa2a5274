"""metrics/features.py, fid_inception.py and real.py: the pool3 networks, cached real features."""

import numpy as np
import pytest
import torch

from stackgan.metrics.base import MetricError
from stackgan.metrics.fid import fid_from_features

from .conftest import MeanColour


def test_real_inception_network_gives_pool3_features():
    pytest.importorskip("torch")
    from stackgan.metrics.base import FEATURE_DIM
    from stackgan.metrics.features import InceptionFeatures

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
    from stackgan.metrics.inception_score import (
        UserClassifier,
    )  # the .pth's logits serve the IS too

    probs = UserClassifier(pth).probabilities(np.zeros((3, 32, 32, 3), np.uint8))
    assert probs.shape == (3, FI.NUM_LOGITS) and np.allclose(probs.sum(1), 1)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(MetricError, match="missing Mixed_7c"):
        feature_network(tmp_path / "broken.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MetricError, match="cannot read"):
        feature_network(tmp_path / "junk.pth")


def test_dataset_features_are_cached_per_split_and_size(tiny_shapes):
    from stackgan.metrics.real import dataset_features

    net = MeanColour()
    net.name = "meancolour-cache-test"  # its own cache files, whatever ran before
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
