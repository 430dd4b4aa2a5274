"""The FID Inception-v3 in plain PyTorch, for a user's ``pt_inception-2015-12-05-*.pth``.

pytorch-fid and torch-fidelity ship the TensorFlow FID network (the 2015-12-05 graph) as a
PyTorch state dict for torchvision's ``Inception3`` with four blocks patched to match TF
(average pools that ignore padding, and a max pool in the last block). torchvision does not
import beside this project's CPU torch, so the architecture is written out here, with
torchvision's module names so such a file loads as it is. It is the same network as the
TorchScript ``default_1.pt`` (the tests load that file's weights into this module and compare
the features), plus the 1008-way logits layer that the Inception Score uses.

Input as pytorch-fid: images in [0, 1], bilinear resize to 299, then 2x - 1.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.metrics.base import MetricError, inception_input
from stackgan.utils.cache import file_digest

NUM_LOGITS = 1008  # the 2015-12-05 graph's classes (1000 ImageNet + 8 unused)


class BasicConv2d(nn.Module):
    """conv (no bias) + BatchNorm (eps 0.001, as TF) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Any, stride: int = 1, padding: Any = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # TF: padding not averaged in


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for conv in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = conv(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """``max_pool``: the last block pools by max, not average (TF graph; pytorch-fid's E_2)."""

    def __init__(self, cin: int, max_pool: bool = False) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """(B, 3, 299, 299) in [-1, 1] -> (B, 2048) pool3 features; :meth:`logits` -> (B, 1008)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, NUM_LOGITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, 2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))  # (B, 2048)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.forward(x))
        return out


def load_fid_weights(path: str | Path) -> FIDInceptionV3:
    """A :class:`FIDInceptionV3` with the weights of a pytorch-fid / torch-fidelity ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"FID weights {path} do not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise MetricError(f"cannot read the FID weights {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise MetricError(f"{path} is not a state dict")
    net = FIDInceptionV3()
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise MetricError(
            f"{path} is not the FID Inception-v3 (pt_inception-2015-12-05): missing "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    try:
        net.load_state_dict({k: state[k] for k in expected if k in state}, strict=False)
    except RuntimeError as exc:
        raise MetricError(f"{path} does not fit the FID Inception-v3: {exc}") from exc
    return net.eval().requires_grad_(False)


def state_from_torchscript(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript ``default_1.pt`` state (TF layer names: ``mixed_4.tower_1.conv_2``,
    with beta/mean/var and no BN scale) onto :class:`FIDInceptionV3`'s names. Both list each
    block's convolutions in the same order, which the shape checks confirm."""
    src = [k[: -len(".weight")] for k in ts_state if k.endswith(".weight")]
    net = FIDInceptionV3()
    dst = [n for n, m in net.named_modules() if isinstance(m, BasicConv2d)]
    if len(src) != len(dst):
        raise MetricError(f"{len(src)} convolutions in the TorchScript state, {len(dst)} here")
    out: dict[str, torch.Tensor] = {}
    ref = net.state_dict()
    for s, d in zip(src, dst):
        w = ts_state[f"{s}.weight"]
        if w.shape != ref[f"{d}.conv.weight"].shape:
            raise MetricError(f"{s} {tuple(w.shape)} does not line up with {d}")
        out[f"{d}.conv.weight"] = w
        out[f"{d}.bn.weight"] = torch.ones_like(ts_state[f"{s}.beta"])
        out[f"{d}.bn.bias"] = ts_state[f"{s}.beta"]
        out[f"{d}.bn.running_mean"] = ts_state[f"{s}.mean"]
        out[f"{d}.bn.running_var"] = ts_state[f"{s}.var"]
    return out


def preprocess(images: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] or (B, H, W, 3) uint8 -> (B, 3, 299, 299) as pytorch-fid feeds
    its network ([0, 1], bilinear resize, then 2x - 1)."""
    return 2 * inception_input(images, device) - 1


class PthInceptionFeatures(nn.Module):
    """The :class:`~stackgan.metrics.features.InceptionFeatures` interface over a user's
    pytorch-fid weights file."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.path = Path(path)
        self.device = torch.device(device)
        self.net = load_fid_weights(self.path).to(self.device)
        self.name = f"inception-pth-{file_digest(self.path)}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats: torch.Tensor = self.net(preprocess(images, self.device))
        return feats.float().cpu()

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.logits(preprocess(images, self.device)).float().cpu()
