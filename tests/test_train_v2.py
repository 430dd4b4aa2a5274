"""StackGAN++ training: one-iteration smoke tests (text and unconditional), resume, round trip."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stackgan.checkpoint import load_checkpoint
from stackgan.cli import main
from stackgan.sampling import Text2ImageSampler
from stackgan.train import train

from .conftest import tiny_config, tiny_overrides

V2 = {"model.version": "v2", "model.num_branches": 3, "model.ngf": 8}


def _uncond(root, **extra):
    return tiny_config(root, **V2, **{"model.conditional": False, "data.name": "folder"}, **extra)


def test_v2_one_iteration_smoke_and_export_round_trip(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes, **V2)
    export = train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    for i in range(3):  # one discriminator phase per branch
        assert {f"d_real_{i}", f"d_wrong_{i}", f"d_fake_{i}", f"g_adv_{i}"} <= set(rec)
    assert "cc_mean_1" not in rec  # colour consistency is off for text-conditioned training
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    assert len(ckpt["discriminators"]) == 3 and len(ckpt["optimizers"]["discriminators"]) == 3
    # the export rebuilds the same generator: identical outputs to the checkpoint's EMA weights
    sampler = Text2ImageSampler.from_pretrained(export)
    assert sampler.resolution == 64
    emb = torch.randn(2, cfg.text.dim)
    a = sampler.generate(emb, seed=3)
    sampler.generator.load_state_dict(ckpt["generator_ema"])
    b = sampler.generate(emb, seed=3)
    assert [t.shape[-1] for t in a] == [16, 32, 64]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_v2_resume_continues_exactly(tiny_shapes, tmp_path):
    cfg2 = tiny_config(tiny_shapes, **V2, **{"train.total_iters": 2})
    train(cfg2, tmp_path / "full")
    cfg1 = tiny_config(tiny_shapes, **V2, **{"train.total_iters": 1})
    train(cfg1, tmp_path / "part")
    train(cfg2, tmp_path / "part", resume=tmp_path / "part" / "checkpoint-latest.pt")
    full = load_checkpoint(tmp_path / "full" / "checkpoint-latest.pt")
    part = load_checkpoint(tmp_path / "part" / "checkpoint-latest.pt")
    assert part["step"] == 2
    for k, v in full["generator"].items():
        assert torch.allclose(v.float(), part["generator"][k].float(), atol=1e-6), k
    for d_full, d_part in zip(full["discriminators"], part["discriminators"]):
        for k, v in d_full.items():
            assert torch.allclose(v.float(), d_part[k].float(), atol=1e-6), k


def test_v2_unconditional_trains_on_an_image_folder_and_samples(tiny_shapes, tmp_path):
    folder = tiny_shapes / "CUB_200_2011" / "images"  # a plain folder of PNGs, no text
    cfg = _uncond(folder)
    export = train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert {"d_real_uncond_0", "d_fake_uncond_2", "g_adv_uncond_1", "cc_mean_1", "cc_cov_2"} <= set(
        rec
    )  # colour consistency is on by default in unconditional mode
    assert "kl" not in rec and not (tmp_path / "run" / "captions-grid.txt").exists()
    out = tmp_path / "samples"
    res = CliRunner().invoke(
        main, ["sample", "--model", str(export), "--num", "5", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png", "grid.png"]
    from PIL import Image

    assert np.asarray(Image.open(out / "0000.png")).shape == (64, 64, 3)
    res = CliRunner().invoke(main, ["sample", "--model", str(export), "a red circle"])
    assert res.exit_code != 0 and "unconditional" in res.output


def test_unconditional_mode_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(
        main,
        [
            "train",
            "configs/v2_shapes_uncond.yaml",
            "--outdir",
            str(tmp_path / "runs"),
            *[
                f"--set={o}"
                for o in tiny_overrides(tmp_path / "empty", **V2, **{"model.conditional": False})
            ],
        ],
    )
    assert res.exit_code != 0 and "no .jpg/.jpeg/.png images" in res.output


@pytest.mark.parametrize(
    "preset",
    [
        "configs/v2_birds_3branch.yaml",
        "configs/v2_shapes_3branch.yaml",
        "configs/v2_shapes_uncond.yaml",
    ],
)
def test_v2_presets_load(preset):
    from stackgan.config import load_config

    cfg = load_config(preset)
    assert cfg.model.version == "v2"


def test_metrics_during_training_keep_the_best_model(tiny_shapes, tmp_path):
    cfg = tiny_config(
        tiny_shapes,
        **V2,
        **{"train.total_iters": 2, "train.metric_ticks": 1, "train.metric_samples": 4},
    )
    train(cfg, tmp_path / "run")
    recs = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all("metric/consistency_object" in r and "metric/is_best" in r for r in recs)
    assert recs[0]["metric/is_best"] == 1.0  # the first score is the best so far
    assert (tmp_path / "run" / "model-best.safetensors").exists()


def test_resume_keeps_the_best_score(tiny_shapes, tmp_path):
    metric = {"train.metric_ticks": 1, "train.metric_samples": 4}
    run = tmp_path / "run"
    train(tiny_config(tiny_shapes, **V2, **metric, **{"train.total_iters": 2}), run)
    ckpt = load_checkpoint(run / "checkpoint-latest.pt")
    scores = [
        (r["metric/consistency_object"] + r["metric/consistency_background"]) / 2
        for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines())
    ]
    assert ckpt["metric_best"] == {"score": pytest.approx(max(scores)), "kind": "consistency4"}
    # pretend the earlier best was unbeatable: the resumed run must not call anything best
    ckpt["metric_best"]["score"] = 2.0
    torch.save(ckpt, run / "checkpoint-latest.pt")
    before = (run / "model-best.safetensors").read_bytes()
    cfg = tiny_config(tiny_shapes, **V2, **metric, **{"train.total_iters": 4})
    train(cfg, run, resume=run / "checkpoint-latest.pt")
    recs = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["metric/is_best"] for r in recs[2:]] == [0.0, 0.0]
    assert (run / "model-best.safetensors").read_bytes() == before
    assert load_checkpoint(run / "checkpoint-latest.pt")["metric_best"]["score"] == 2.0
    # a different metric (here more samples) is not compared with the old score
    more = tiny_config(
        tiny_shapes, **V2, **{**metric, "train.total_iters": 5, "train.metric_samples": 5}
    )
    train(more, run, resume=run / "checkpoint-latest.pt")
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert last["metric/is_best"] == 1.0


def test_every_preset_loads():
    from pathlib import Path

    from stackgan.config import load_config

    presets = sorted(Path("configs").glob("*.yaml"))
    assert len(presets) >= 8
    for p in presets:
        load_config(p)


def test_unconditional_training_on_a_dataset_layout_uses_its_split_only(tiny_shapes, tmp_path):
    """A CUB / flowers / COCO root trains on data.split's images: the test images FID is
    measured against are never trained on (a plain folder keeps every image)."""
    from stackgan.data.folder import list_images
    from stackgan.data.layouts import read_index
    from stackgan.train.setup import build_data

    train_keys = read_index(tiny_shapes, "train").keys
    every = list_images(tiny_shapes / "CUB_200_2011" / "images")
    assert len(train_keys) < len(every)
    cfg = tiny_config(tiny_shapes, **V2, **{"model.conditional": False})
    data = build_data(cfg, torch.device("cpu"))
    assert len(data.ds) == len(train_keys)
    folder = build_data(_uncond(tiny_shapes / "CUB_200_2011" / "images"), torch.device("cpu"))
    assert len(folder.ds) == len(every)


def test_unconditional_training_measures_fid_and_keeps_the_best(tiny_shapes, tmp_path, monkeypatch):
    """train.metric_fid works without text: FID of unconditional samples against the test
    images, in metric-fid.jsonl and stats.jsonl, and model-best.safetensors."""
    from stackgan.train import monitor

    from .conftest import MeanColour

    monkeypatch.setattr(monitor, "InceptionFeatures", lambda device: MeanColour())
    extra = {"train.total_iters": 2, "train.metric_ticks": 1, "train.metric_samples": 6}
    cfg = tiny_config(
        tiny_shapes, **V2, **{"model.conditional": False, "train.metric_fid": True}, **extra
    )
    train(cfg, tmp_path / "run")
    recs = [json.loads(x) for x in (tmp_path / "run" / "metric-fid.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and recs[0]["num_samples"] == 6
    stats = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[0])
    assert stats["metric/fid6"] == recs[0]["results"]["fid6"] > 0
    assert (tmp_path / "run" / "model-best.safetensors").exists()


def test_tree_on_crops_draws_the_same_pixels_as_the_whole_image_inside_the_square():
    """With batch statistics frozen (eval mode), the last branch run on a square of its input
    gives the whole image's pixels there, except a border as wide as its receptive field; the
    square one input pixel away does not match (the weights are spread so the image varies)."""
    from torch import nn

    from stackgan.models.v2 import TreeGenerator

    torch.manual_seed(0)
    g = TreeGenerator(16, ngf=8, num_branches=3, num_res_blocks=1, base_size=16).eval()
    for mod in g.modules():  # He-scaled convs and uneven statistics: a textured image
        if isinstance(mod, nn.Conv2d):
            nn.init.normal_(mod.weight, 0, (2 / (mod.in_channels * 9)) ** 0.5)
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    z, t = torch.randn(2, 100), torch.randn(2, 16)
    eps = torch.randn(2, 128)
    with torch.no_grad():
        whole = g(z, t, eps)
        corners = torch.tensor([[0, 32], [16, 8]])
        part = g(z, t, eps, crop=(32, corners))
    assert whole.images[-1].std() > 0.2
    assert [im.shape[-1] for im in part.images] == [16, 32, 32]
    assert part.coarse_crop is not None and part.coarse_crop.shape == (2, 3, 16, 16)
    assert torch.equal(part.images[0], whole.images[0])  # the coarser branches are whole
    m = 8  # the last branch's receptive field, in its output pixels

    def inner(i: int, y: int, x: int) -> torch.Tensor:
        return whole.images[-1][i, :, y + m : y + 32 - m, x + m : x + 32 - m]

    for i, (y, x) in enumerate(corners.tolist()):
        got = part.images[-1][i, :, m:-m, m:-m]
        assert torch.allclose(got, inner(i, y, x), atol=1e-5)
        coarse = whole.images[1][i, :, y // 2 : y // 2 + 16, x // 2 : x // 2 + 16]
        assert torch.equal(part.coarse_crop[i], coarse)
    # negative control: the square 2 output pixels (1 input pixel) to the side differs
    assert (part.images[-1][0, :, m:-m, m:-m] - inner(0, 0, 30)).abs().max() > 0.02
    with pytest.raises(ValueError, match="leaves"):
        g(z, t, eps, crop=(32, torch.tensor([[0, 40], [0, 0]])))
    with pytest.raises(ValueError, match="even"):
        g(z, t, eps, crop=(32, torch.tensor([[1, 0], [0, 0]])))


@pytest.mark.parametrize("d_type", ["stackgan", "projected"])
def test_v2_trains_its_last_branch_on_crops_and_samples_whole_images(
    tiny_shapes, tmp_path, d_type, monkeypatch
):
    if d_type == "projected":  # random frozen weights: no package needed
        from stackgan.models import efficientnet

        from .test_projected import random_lite0_state

        monkeypatch.setattr(efficientnet, "load_weights", lambda path=None: random_lite0_state())
    extra = {"train.crop": 32, "model.d_type": d_type, "loss.color_weight": 1.0}
    if d_type == "projected":  # the frozen network needs 32 px or more
        extra["model.d_feature_size"] = 32
    cfg = tiny_config(tiny_shapes, **V2, **extra)
    export = train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert {"d_real_2", "g_adv_2", "cc_mean_2"} <= set(rec)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    assert ckpt["step"] == cfg.train.total_iters
    sampler = Text2ImageSampler.from_pretrained(export)
    assert [im.shape[-1] for im in sampler.generate(torch.randn(2, cfg.text.dim), seed=0)] == [
        16,
        32,
        64,
    ]


def test_tree_crop_options_are_checked(tiny_shapes):
    from stackgan.config import ConfigError

    for crop in (64, 24, 4):  # the whole last image; not a power of two; below 8
        with pytest.raises(ConfigError, match=r"train\.crop"):
            tiny_config(tiny_shapes, **V2, **{"train.crop": crop})
    with pytest.raises(ConfigError, match="2 or more branches"):
        tiny_config(tiny_shapes, **{**V2, "model.num_branches": 1}, **{"train.crop": 8})


def test_tree_on_crops_matches_the_text_on_the_whole_image_before_the_square(tiny_shapes):
    from torch import nn

    from stackgan.models.registry import build_discriminators, build_generator
    from stackgan.train.steps import g_step

    cfg = tiny_config(tiny_shapes, **V2, **{"train.crop": 16})  # branches 16, 32, 64 px
    g, ds = build_generator(cfg), build_discriminators(cfg)
    seen = []

    class Matcher(nn.Module):  # records what it reads
        def forward(self, img):
            seen.append(tuple(img.shape[-2:]))
            return img.float().mean((2, 3)).repeat(1, cfg.text.dim // 3 + 1)[:, : cfg.text.dim]

    t = torch.randn(4, cfg.text.dim)
    out = g(torch.randn(4, cfg.model.z_dim), t, crop=(16, torch.zeros(4, 2, dtype=torch.long)))
    assert out.images[-1].shape[-1] == 16
    opt = torch.optim.Adam(g.parameters(), 1e-3)
    stats = g_step(g, ds, opt, out, t, matcher=Matcher(), match_weight=1.0)
    assert seen == [(32, 32)]  # the whole 32 px image, not the 16 px square of the 64 px one
    assert torch.isfinite(stats["match"])


def test_resuming_with_another_crop_names_train_crop(tiny_shapes, tmp_path):
    from stackgan.checkpoint import CheckpointError

    train(tiny_config(tiny_shapes, **V2, **{"train.crop": 32}), tmp_path / "run")
    cfg = tiny_config(tiny_shapes, **V2, **{"train.total_iters": 2})
    with pytest.raises(CheckpointError, match=r"train\.crop 32 .* --set train\.crop=32"):
        train(cfg, tmp_path / "run", resume=tmp_path / "run" / "checkpoint-latest.pt")


def test_tree_crop_corners_are_drawn_for_the_global_batch_and_sliced_per_rank(tiny_shapes):
    """Under torchrun every rank draws the global batch's corners and keeps its slice, so the
    two ranks' squares together are the one-process run's, and no two ranks crop alike."""
    import contextlib

    from stackgan.train.iteration import Runtime, next_batch
    from stackgan.train.setup import build_data, build_networks
    from stackgan.train.state import build_state
    from stackgan.utils.distributed import DistInfo

    cpu = torch.device("cpu")

    def corners(batch_size: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = tiny_config(tiny_shapes, **V2, **{"train.crop": 32, "train.batch_size": batch_size})
        g, ds, g_ema = build_networks(cfg, cpu, torch.contiguous_format)
        state = build_state(cfg, g, g_ema, ds)
        rt = Runtime(
            cpu, contextlib.nullcontext, torch.contiguous_format, None, DistInfo(rank, world)
        )
        inputs = next_batch(cfg, build_data(cfg, cpu), state, rt)
        assert inputs.corners is not None and len(inputs.z) == batch_size
        return inputs.corners

    g_one, real_one = corners(8, 0, 1)
    (g0, real0), (g1, real1) = corners(4, 0, 2), corners(4, 1, 2)
    assert torch.equal(torch.cat([g0, g1]), g_one) and torch.equal(
        torch.cat([real0, real1]), real_one
    )
    assert not torch.equal(g0, g1) and not torch.equal(real0, real1)
    assert int(g_one.max()) <= 32 and not (g_one % 2).any()  # even, inside the 64 px image
