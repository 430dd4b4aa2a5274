"""``stackgan convert``: the original releases' generators reproduce their outputs in ours.

The reference networks below are test fixtures: tiny versions of hanzhanggit/StackGAN-Pytorch's
``STAGE1_G`` / ``STAGE2_G`` and hanzhanggit/StackGAN-v2's ``G_NET``, with the published
parameter names and forward semantics (noise-first Stage-I fc, ReLU or GLU CA, c-first
``jointConv``, ...), the CA noise passed in explicitly so both sides can share it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors import safe_open
from torch import nn

from stackgan.checkpoint import load_export
from stackgan.cli import main
from stackgan.config import ConfigError, config_from_dict
from stackgan.convert import ConvertError, convert_file, convert_state_dict, read_state_dict
from stackgan.models.registry import build_generator
from stackgan.sampling import Text2ImageSampler

T7 = Path(__file__).resolve().parents[2] / "shared" / "data"
T7 = T7 / "stackgan_example_caption_charcnnrnn_1x1024.t7"
TEXT, Z, COND, BATCH = 32, 8, 6, 2


# -- the reference architectures (fixtures) -------------------------------------------------


def _conv3x3(i: int, o: int) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, 1, 1, bias=False)


class RefGLU(nn.Module):
    def forward(self, x):
        nc = x.size(1) // 2
        return x[:, :nc] * torch.sigmoid(x[:, nc:])


def _up(i: int, o: int, glu: bool = False) -> nn.Sequential:  # upBlock
    mid = o * 2 if glu else o
    act = RefGLU() if glu else nn.ReLU(True)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), _conv3x3(i, mid), nn.BatchNorm2d(mid), act
    )


class RefCA(nn.Module):  # CA_NET; eps is an argument here instead of drawn inside
    def __init__(self, t: int, c: int, glu: bool = False):
        super().__init__()
        self.c, self.glu = c, glu
        self.fc = nn.Linear(t, c * (4 if glu else 2), bias=True)

    def forward(self, emb, eps):
        x = self.fc(emb)
        x = RefGLU()(x) if self.glu else F.relu(x)
        mu, logvar = x[:, : self.c], x[:, self.c :]
        return eps * torch.exp(0.5 * logvar) + mu


class RefResBlock(nn.Module):
    def __init__(self, ch: int, glu: bool = False):
        super().__init__()
        act = RefGLU() if glu else nn.ReLU(True)
        mid = ch * 2 if glu else ch
        self.glu = glu
        self.block = nn.Sequential(
            _conv3x3(ch, mid), nn.BatchNorm2d(mid), act, _conv3x3(ch, ch), nn.BatchNorm2d(ch)
        )

    def forward(self, x):
        out = self.block(x) + x
        return out if self.glu else F.relu(out)


class RefStage1(nn.Module):  # STAGE1_G
    def __init__(self, t: int = TEXT, gf: int = 8):
        super().__init__()
        self.gf = gf * 8
        self.ca_net = RefCA(t, COND)
        self.fc = nn.Sequential(
            nn.Linear(Z + COND, self.gf * 16, bias=False),
            nn.BatchNorm1d(self.gf * 16),
            nn.ReLU(True),
        )
        for i in range(1, 5):
            setattr(self, f"upsample{i}", _up(self.gf // 2 ** (i - 1), self.gf // 2**i))
        self.img = nn.Sequential(_conv3x3(self.gf // 16, 3), nn.Tanh())

    def forward(self, emb, z, eps):
        c = self.ca_net(emb, eps)
        h = self.fc(torch.cat((z, c), 1)).view(-1, self.gf, 4, 4)  # noise first
        for i in range(1, 5):
            h = getattr(self, f"upsample{i}")(h)
        return [self.img(h)]


class RefStage2(nn.Module):  # STAGE2_G
    def __init__(self, gf: int = 8, r_num: int = 2):
        super().__init__()
        self.STAGE1_G = RefStage1(gf=8)
        self.ca_net = RefCA(TEXT, COND)
        self.encoder = nn.Sequential(
            _conv3x3(3, gf), nn.ReLU(True),
            nn.Conv2d(gf, gf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(gf * 2), nn.ReLU(True),
            nn.Conv2d(gf * 2, gf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(gf * 4), nn.ReLU(True),
        )  # fmt: skip
        self.hr_joint = nn.Sequential(
            _conv3x3(COND + gf * 4, gf * 4), nn.BatchNorm2d(gf * 4), nn.ReLU(True)
        )
        self.residual = nn.Sequential(*[RefResBlock(gf * 4) for _ in range(r_num)])
        for i in range(1, 5):
            setattr(self, f"upsample{i}", _up(gf * 4 // 2 ** (i - 1), gf * 4 // 2**i))
        self.img = nn.Sequential(_conv3x3(gf // 4, 3), nn.Tanh())

    def forward(self, emb, z, eps):
        (low,) = self.STAGE1_G(emb, z, eps)
        c = self.ca_net(emb, eps)[:, :, None, None].repeat(1, 1, 16, 16)
        h = self.residual(self.hr_joint(torch.cat([self.encoder(low), c], 1)))  # image first
        for i in range(1, 5):
            h = getattr(self, f"upsample{i}")(h)
        return [low, self.img(h)]


class RefInit(nn.Module):  # INIT_STAGE_G
    def __init__(self, ngf: int, in_dim: int):
        super().__init__()
        self.ngf = ngf
        self.fc = nn.Sequential(
            nn.Linear(in_dim, ngf * 32, bias=False), nn.BatchNorm1d(ngf * 32), RefGLU()
        )
        for i in range(1, 5):
            setattr(self, f"upsample{i}", _up(ngf // 2 ** (i - 1), ngf // 2**i, glu=True))

    def forward(self, z, c):
        h = self.fc(z if c is None else torch.cat((c, z), 1)).view(-1, self.ngf, 4, 4)
        for i in range(1, 5):
            h = getattr(self, f"upsample{i}")(h)
        return h


class RefNext(nn.Module):  # NEXT_STAGE_G
    def __init__(self, ngf: int, ef: int, r_num: int):
        super().__init__()
        self.jointConv = nn.Sequential(
            _conv3x3(ngf + ef, ngf * 2), nn.BatchNorm2d(ngf * 2), RefGLU()
        )
        self.residual = nn.Sequential(*[RefResBlock(ngf, glu=True) for _ in range(r_num)])
        self.upsample = _up(ngf, ngf // 2, glu=True)

    def forward(self, h, c):
        c = c[:, :, None, None].repeat(1, 1, h.size(2), h.size(2))
        return self.upsample(self.residual(self.jointConv(torch.cat((c, h), 1))))  # c first


class RefImg(nn.Module):  # GET_IMAGE_G
    def __init__(self, ngf: int):
        super().__init__()
        self.img = nn.Sequential(_conv3x3(ngf, 3), nn.Tanh())

    def forward(self, h):
        return self.img(h)


class RefGNet(nn.Module):  # G_NET
    def __init__(self, conditional: bool = True, branches: int = 3, gf: int = 8, r_num: int = 2):
        super().__init__()
        self.conditional, self.branches = conditional, branches
        if conditional:
            self.ca_net = RefCA(TEXT, COND, glu=True)
        self.h_net1 = RefInit(gf * 16, Z + (COND if conditional else 0))
        self.img_net1 = RefImg(gf)
        for i in range(2, branches + 1):
            setattr(
                self, f"h_net{i}", RefNext(gf // 2 ** (i - 2), COND if conditional else Z, r_num)
            )
            setattr(self, f"img_net{i}", RefImg(gf // 2 ** (i - 1)))

    def forward(self, emb, z, eps):
        c = self.ca_net(emb, eps) if self.conditional else z
        h = self.h_net1(z, c if self.conditional else None)
        imgs = [self.img_net1(h)]
        for i in range(2, self.branches + 1):
            h = getattr(self, f"h_net{i}")(h, c)
            imgs.append(getattr(self, f"img_net{i}")(h))
        return imgs


def _randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics (a trained net's BN is no identity)."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.2)
            nn.init.normal_(m.bias, 0.0, 0.2)
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


ARCHS = {
    "stage1": lambda: RefStage1(),
    "stage2": lambda: RefStage2(),
    "v2": lambda: RefGNet(),
    "v2-uncond": lambda: RefGNet(conditional=False, branches=2),
}


def _save(sd: dict, path: Path, prefix: bool, legacy: bool, tracked: bool) -> Path:
    sd = {
        ("module." if prefix else "") + k: v
        for k, v in sd.items()
        if tracked or not k.endswith("num_batches_tracked")
    }
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    return path


def _inputs(text: int = TEXT, n: int = BATCH):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(n, text, generator=g),
        torch.randn(n, Z, generator=g),
        torch.randn(n, COND, generator=g),
    )


def _ours(path: Path) -> nn.Module:
    state, cfg = load_export(path)
    g = build_generator(cfg)
    g.load_state_dict(state)
    return g.eval()


# -- equivalence ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize(
    ("prefix", "legacy", "tracked"),
    [(False, False, True), (True, True, False)],
    ids=["zip", "legacy-module-nonbt"],
)
def test_converted_generator_reproduces_the_reference(arch, prefix, legacy, tracked, tmp_path):
    ref = _randomised(ARCHS[arch]())
    src = _save(ref.state_dict(), tmp_path / "netG.pth", prefix, legacy, tracked)
    out = tmp_path / "model.safetensors"
    converted = convert_file(src, out)
    assert converted.cfg.text.encoder == "precomputed"
    assert load_export(out)[1].data.name == "unknown"
    gen = _ours(out)
    emb, z, eps = _inputs()
    with torch.no_grad():
        want = ref(emb, z, eps)
        got = gen(z, None if arch == "v2-uncond" else emb, eps).images
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_inferred_config_matches_the_reference():
    stage2 = convert_state_dict(_randomised(RefStage2(gf=8, r_num=3)).state_dict()).cfg
    m = stage2.model
    assert (m.version, m.stage, m.z_dim, m.cond_dim, m.ngf, m.ngf2) == ("v1", 2, Z, COND, 8, 8)
    assert (m.num_res_blocks, m.stage1_img_size, m.stage2_img_size) == (3, 64, 256)
    assert m.ca_activation == "relu" and stage2.text.dim == TEXT
    v2 = convert_state_dict(_randomised(RefGNet(branches=2, r_num=1)).state_dict()).cfg.model
    assert (v2.version, v2.conditional, v2.num_branches, v2.num_res_blocks, v2.ngf) == (
        "v2",
        True,
        2,
        1,
        8,
    )
    uncond = convert_state_dict(_randomised(RefGNet(conditional=False)).state_dict()).cfg.model
    assert not uncond.conditional and uncond.z_dim == Z


def test_ca_activation_is_validated_and_defaults_to_leaky():
    with pytest.raises(ConfigError, match=r"model\.ca_activation"):
        config_from_dict({"model": {"ca_activation": "gelu"}})
    tiny = {"z_dim": Z, "cond_dim": COND, "ngf": 4, "ngf2": 4, "num_res_blocks": 1}
    g = build_generator(config_from_dict({"text": {"dim": TEXT}, "model": tiny}))
    assert isinstance(g.ca.act, nn.LeakyReLU)
    model = {**tiny, "ca_activation": "relu", "stage": 2}
    relu = build_generator(config_from_dict({"text": {"dim": TEXT}, "model": model}))
    assert type(relu.ca.act) is nn.ReLU and type(relu.stage1.ca.act) is nn.ReLU


# -- errors -------------------------------------------------------------------------------------


def test_discriminator_file_is_named(tmp_path):
    sd = {
        "encode_img.0.weight": torch.zeros(8, 3, 4, 4),
        "get_cond_logits.outlogits.0.weight": torch.zeros(8, 8, 3, 3),
    }
    path = _save(sd, tmp_path / "netD_epoch_600.pth", True, False, True)
    with pytest.raises(ConvertError, match="discriminator; convert the netG"):
        convert_file(path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_other_state_dict_names_what_was_expected(tmp_path):
    path = _save({"foo.weight": torch.zeros(3)}, tmp_path / "x.pth", False, False, True)
    with pytest.raises(
        ConvertError, match=r"not a StackGAN generator: expected .*STAGE1_G.*h_net1"
    ):
        convert_file(path, tmp_path / "out.safetensors")


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path):
    sd = _randomised(RefStage1()).state_dict()
    sd["upsample2.1.weight"] = torch.zeros(16, 32, 5, 5)
    with pytest.raises(
        ConvertError, match=r"upsample2\.1\.weight has shape \(16, 32, 5, 5\).*\(16, 32, 3, 3\)"
    ):
        convert_state_dict(sd)
    sd = _randomised(RefStage1()).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ConvertError, match=r"unexpected key extra\.weight"):
        convert_state_dict(sd)
    sd = _randomised(RefStage1()).state_dict()
    del sd["upsample3.2.running_var"]
    with pytest.raises(ConvertError, match="1 tensors missing"):
        convert_state_dict(sd)


def test_nonfinite_weight_and_wrong_release_are_refused():
    sd = _randomised(RefStage1()).state_dict()
    sd["img.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ConvertError, match=r"non-finite.*img\.0\.weight"):
        convert_state_dict(sd)
    with pytest.raises(ConvertError, match=r"StackGAN-v2 generator.*not a stackgan-pytorch"):
        convert_state_dict(_randomised(RefGNet()).state_dict(), "stackgan-pytorch")


def test_v2_branches_with_different_residual_counts_are_refused():
    # the reference builds a 4th branch with one residual block whatever R_NUM says
    sd = {
        k: v for k, v in RefGNet(branches=4).state_dict().items() if "h_net4.residual.1." not in k
    }
    with pytest.raises(ConvertError, match="residual blocks per branch"):
        convert_state_dict(sd)


class _Opaque:  # a pickled object that weights_only loading must refuse to build
    pass


@pytest.mark.parametrize("kind", ["garbage", "empty", "object", "not-tensors", "missing"])
def test_unreadable_files_are_one_clear_error(kind, tmp_path):
    path = tmp_path / "netG.pth"
    if kind == "garbage":
        path.write_bytes(b"\x00\x01not a torch file" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "object":
        path.write_bytes(pickle.dumps(_Opaque(), protocol=2))
    elif kind == "not-tensors":
        torch.save({"a": 1}, path)
    match = {"not-tensors": "not a state dict", "missing": "file not found"}.get(
        kind, "not a PyTorch weights file"
    )
    with pytest.raises(ConvertError, match=match) as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)


# -- command line, fp16 and sampling ----------------------------------------------------------


def test_cli_converts_and_reports_errors_in_one_line(tmp_path):
    src = _save(
        _randomised(RefGNet()).state_dict(), tmp_path / "netG_210000.pth", True, False, True
    )
    out = tmp_path / "v2.safetensors"
    res = CliRunner().invoke(
        main, ["convert", str(src), "--out", str(out), "--from", "stackgan-v2"]
    )
    assert res.exit_code == 0, res.output
    assert "StackGAN-v2 generator" in res.output and out.is_file()
    res = CliRunner().invoke(
        main, ["convert", str(src), "--out", str(out), "--from", "stackgan-pytorch"]
    )
    assert res.exit_code != 0
    assert res.output.strip().count("\n") == 0 and "ConvertError" in res.output


def test_half_writes_fp16_tensors(tmp_path):
    ref = _randomised(RefStage1())
    src = _save(ref.state_dict(), tmp_path / "netG.pth", False, False, True)
    out = tmp_path / "half.safetensors"
    res = CliRunner().invoke(main, ["convert", str(src), "--out", str(out), "--half"])
    assert res.exit_code == 0, res.output
    with safe_open(str(out), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16, torch.int64}
    emb, z, eps = _inputs()
    with torch.no_grad():
        got = _ours(out)(z, emb, eps).images[0]
        torch.testing.assert_close(got, ref(emb, z, eps)[0], atol=2e-2, rtol=0)


@pytest.fixture
def char_cnn_rnn_model(tmp_path):
    """A Stage-I reference at the char-CNN-RNN text size (1024), converted."""
    ref = _randomised(RefStage1(t=1024))
    out = tmp_path / "birds-original.safetensors"
    convert_file(_save(ref.state_dict(), tmp_path / "netG_epoch_600.pth", False, True, False), out)
    return ref, out


def test_sampler_reproduces_the_reference_from_embeddings(char_cnn_rnn_model):
    ref, out = char_cnn_rnn_model
    sampler = Text2ImageSampler.from_pretrained(out)
    emb, z, eps = _inputs(1024)
    got = sampler(text_emb=emb, latents=z, ca_noise=eps, output_type="pt").images
    with torch.no_grad():
        torch.testing.assert_close(got, ref(emb, z, eps)[0], atol=1e-5, rtol=0)


def test_sample_cli_with_npy_embeddings(char_cnn_rnn_model, tmp_path):
    _, model = char_cnn_rnn_model
    vectors = tmp_path / "captions.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32))
    args = [
        "sample",
        "--model",
        str(model),
        "--embeddings",
        str(vectors),
        "--out",
        str(tmp_path / "s"),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "s").glob("0*.png")) == [
        "0000.png",
        "0001.png",
        "0002.png",
    ]


@pytest.mark.skipif(not T7.is_file(), reason=f"{T7} not present")
def test_sample_cli_with_the_original_t7(char_cnn_rnn_model, tmp_path):
    _, model = char_cnn_rnn_model
    args = ["sample", "--model", str(model), "--embeddings", str(T7), "--out", str(tmp_path / "s")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "0000.png").is_file() and "wrote" in res.output


def test_unconditional_export_samples_without_text(tmp_path):
    src = _save(
        _randomised(RefGNet(conditional=False, branches=2)).state_dict(),
        tmp_path / "g.pth",
        True,
        True,
        True,
    )
    convert_file(src, tmp_path / "church.safetensors")
    sampler = Text2ImageSampler.from_pretrained(tmp_path / "church.safetensors")
    assert not sampler.conditional
    assert sampler(None, num_images=2, output_type="pt").images.shape == (2, 3, 128, 128)


def test_serving_a_model_of_precomputed_embeddings_says_how_to_sample_it(char_cnn_rnn_model):
    """The page and the API send typed sentences, which char-CNN-RNN vectors cannot encode:
    `stackgan serve` refuses such a model at start-up, in one line that names the way that
    works, instead of failing at its warm-up."""
    pytest.importorskip("fastapi")
    _, model = char_cnn_rnn_model
    res = CliRunner().invoke(main, ["serve", "--model", str(model), "--port", "0"])
    assert res.exit_code != 0
    assert "cannot encode typed sentences" in res.output and "--embeddings" in res.output
    assert "Traceback" not in res.output
