import json

import pytest
import torch

from stackgan.checkpoint import (
    CheckpointError,
    export_training_config,
    load_checkpoint,
    load_export,
)
from stackgan.config import ConfigError, config_from_dict, load_config
from stackgan.models.registry import build_generator
from stackgan.train import train
from stackgan.train.ema import update_ema

from .conftest import tiny_config


def _gen_output(state, cfg, seed=0):
    g = build_generator(cfg)
    g.load_state_dict(state)
    g.eval()
    torch.manual_seed(seed)
    z, t = torch.randn(2, cfg.model.z_dim), torch.randn(2, cfg.text.dim)
    return g(z, t, torch.zeros(2, cfg.model.cond_dim)).images[-1]


def test_stage1_one_iteration_smoke(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes)
    export = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "log.txt",
        "stats.jsonl",
        "checkpoint-latest.pt",
        "model.safetensors",
        "captions-grid.txt",
    ):
        assert (run / name).exists(), name
    assert list((run / "samples").glob("grid-*.png"))
    assert "training stage 1 on cpu (amp=off: fp32)" in (run / "log.txt").read_text()
    rec = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 1 and {"d_real", "d_wrong", "d_fake", "g_adv", "kl"} <= set(rec)
    state, cfg2 = load_export(export)
    # an export keeps the model spec (and the full training config as a record)
    assert (cfg2.model, cfg2.text, cfg2.data.name) == (cfg.model, cfg.text, cfg.data.name)
    assert config_from_dict(json.loads(export_training_config(export))) == cfg
    assert _gen_output(state, cfg).shape == (2, 3, 16, 16)


def test_hard_negatives_train(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes, **{"loss.wrong_candidates": 4, "train.total_iters": 2})
    train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 2 and rec["d_wrong"] > 0
    with pytest.raises(ConfigError, match="wrong_candidates"):
        tiny_config(tiny_shapes, **{"loss.wrong_candidates": 0})


def test_r1_penalty_trains_lazily(tiny_shapes, tmp_path):
    # interval 2 over 3 iterations: regularised at steps 0 and 2, so r1 is in the tick's stats
    cfg = tiny_config(
        tiny_shapes,
        **{"loss.r1_gamma": 0.5, "loss.r1_interval": 2, "train.total_iters": 3},
    )
    train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 3 and rec["r1"] > 0
    for key, bad in (("loss.r1_gamma", -1), ("loss.r1_interval", 0)):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            tiny_config(tiny_shapes, **{key: bad})


def test_stage2_one_iteration_smoke(tiny_shapes, tmp_path):
    s1 = train(tiny_config(tiny_shapes), tmp_path / "s1")
    cfg = tiny_config(tiny_shapes, stage=2, **{"model.stage1_checkpoint": str(s1)})
    export = train(cfg, tmp_path / "s2")
    state, _ = load_export(export)
    s1_state, _ = load_export(s1)
    # Stage-I weights travel inside the Stage-II export, unchanged by Stage-II training
    for k, v in s1_state.items():
        assert torch.equal(state[f"stage1.{k}"], v), k
    g = build_generator(cfg)
    g.load_state_dict(state)
    out = g.eval()(torch.randn(2, 8), torch.randn(2, cfg.text.dim))
    assert [im.shape[-1] for im in out.images] == [16, 32]
    # colour consistency, when asked for, pulls Stage-II to the colours of its Stage-I image
    assert "cc_mean_1" not in json.loads((tmp_path / "s2" / "stats.jsonl").read_text())
    # and low-resolution consistency to its pixels
    assert "lowres_1" not in json.loads((tmp_path / "s2" / "stats.jsonl").read_text())
    cc = tiny_config(
        tiny_shapes,
        stage=2,
        **{
            "model.stage1_checkpoint": str(s1),
            "loss.color_weight": 50,
            "loss.lowres_weight": 10,
            "model.stage2_skip": True,
        },
    )
    skip_export = train(cc, tmp_path / "s2cc")
    rec = json.loads((tmp_path / "s2cc" / "stats.jsonl").read_text())
    assert rec["cc_mean_1"] > 0 and rec["cc_cov_1"] > 0 and rec["lowres_1"] > 0
    # a skip-mode Stage-II export rebuilds as one from its own config
    state, skip_cfg = load_export(skip_export)
    g = build_generator(skip_cfg)
    g.load_state_dict(state)
    assert skip_cfg.model.stage2_skip and g.skip
    with pytest.raises(ConfigError, match="lowres_weight"):
        tiny_config(tiny_shapes, **{"loss.lowres_weight": -1})


def test_stage2_needs_a_matching_stage1(tiny_shapes, tmp_path):
    with pytest.raises(ConfigError, match="stage1_checkpoint"):
        train(tiny_config(tiny_shapes, stage=2), tmp_path / "x")
    s1 = train(tiny_config(tiny_shapes, **{"model.ngf": 8}), tmp_path / "s1")
    cfg = tiny_config(tiny_shapes, stage=2, **{"model.stage1_checkpoint": str(s1)})
    with pytest.raises(ConfigError, match="does not match"):
        train(cfg, tmp_path / "s2")


def test_checkpoint_round_trip_identical_outputs(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes)
    export = train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    state, _ = load_export(export)
    a = _gen_output(ckpt["generator_ema"], cfg)
    b = _gen_output(state, cfg)
    assert torch.equal(a, b)
    assert ckpt["step"] == 1 and ckpt["format_version"] == 1
    assert set(ckpt) >= {
        "config",
        "generator",
        "generator_ema",
        "discriminators",
        "optimizers",
        "rng",
        "package_version",
    }


def test_resume_continues_the_run_exactly(tiny_shapes, tmp_path):
    cfg2 = tiny_config(tiny_shapes, **{"train.total_iters": 2})
    train(cfg2, tmp_path / "straight")
    cfg1 = tiny_config(tiny_shapes, **{"train.total_iters": 1})
    train(cfg1, tmp_path / "resumed")
    train(cfg2, tmp_path / "resumed", resume=tmp_path / "resumed" / "checkpoint-latest.pt")
    a = load_checkpoint(tmp_path / "straight" / "checkpoint-latest.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint-latest.pt")
    assert a["step"] == b["step"] == 2
    for k in a["generator"]:
        assert torch.allclose(a["generator"][k].float(), b["generator"][k].float(), atol=1e-6), k
    steps = [
        json.loads(ln)["step"]
        for ln in (tmp_path / "resumed" / "stats.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2]
    # the resume changed a setting: config.yaml is the new one, the first iteration's is kept
    run = tmp_path / "resumed"
    assert load_config(run / "config.yaml") == cfg2
    assert load_config(run / "config-until-0000001.yaml") == cfg1


def test_time_budget_stops_training_and_counts_across_resumes(tiny_shapes, tmp_path):
    # a budget far below one iteration: stop after the first, with checkpoint and export
    cfg = tiny_config(tiny_shapes, **{"train.total_iters": 50, "train.time_budget_min": 1e-6})
    export = train(cfg, tmp_path / "r")
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint-latest.pt")
    assert ckpt["step"] == 1 and export.is_file()
    spent = ckpt["train_seconds"]
    (rec,) = [json.loads(ln) for ln in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    assert rec["step"] == 1 and spent > 0
    assert rec["train_seconds"] == pytest.approx(spent, abs=0.01)
    # resumed with the same budget: it is already spent, one more iteration and stop
    train(cfg, tmp_path / "r", resume=tmp_path / "r" / "checkpoint-latest.pt")
    again = load_checkpoint(tmp_path / "r" / "checkpoint-latest.pt")
    assert again["step"] == 2 and again["train_seconds"] > spent
    # no budget: total_iters decides
    cfg3 = tiny_config(tiny_shapes, **{"train.total_iters": 3})
    train(cfg3, tmp_path / "r", resume=tmp_path / "r" / "checkpoint-latest.pt")
    assert load_checkpoint(tmp_path / "r" / "checkpoint-latest.pt")["step"] == 3
    with pytest.raises(ConfigError, match="time_budget_min"):
        tiny_config(tiny_shapes, **{"train.time_budget_min": -1})


def test_resume_refuses_a_different_model(tiny_shapes, tmp_path):
    train(tiny_config(tiny_shapes), tmp_path / "r")
    other = tiny_config(tiny_shapes, **{"model.ngf": 8, "train.total_iters": 2})
    with pytest.raises(CheckpointError, match="different model"):
        train(other, tmp_path / "r", resume=tmp_path / "r" / "checkpoint-latest.pt")


def test_init_from_fine_tunes_with_a_new_discriminator_head(tiny_shapes, tmp_path):
    train(tiny_config(tiny_shapes), tmp_path / "a")
    src = tmp_path / "a" / "checkpoint-latest.pt"
    cfg = tiny_config(tiny_shapes, **{"model.d_projection": True, "train.init_from": str(src)})
    train(cfg, tmp_path / "b")
    a, b = load_checkpoint(src), load_checkpoint(tmp_path / "b" / "checkpoint-latest.pt")
    assert b["step"] == 1  # a new run, not a resume
    new = [k for k in b["discriminators"][0] if k not in a["discriminators"][0]]
    assert new == ["cond_head.proj.weight"]
    # one G step from the same start moves G less than a fresh init is away from it
    g_a, g_b = a["generator"], b["generator"]
    fresh = tiny_config(tiny_shapes, **{"model.d_projection": True})
    train(fresh, tmp_path / "c")
    g_c = load_checkpoint(tmp_path / "c" / "checkpoint-latest.pt")["generator"]
    k = next(k for k in g_a if k.endswith("weight") and g_a[k].ndim == 4)
    assert (g_b[k] - g_a[k]).abs().mean() < (g_c[k] - g_a[k]).abs().mean()
    with pytest.raises(ConfigError, match="another generator"):
        other = {"model.ngf": 8, "train.init_from": str(src)}
        train(tiny_config(tiny_shapes, **other), tmp_path / "d")


def test_init_from_an_export_starts_g_only_and_d_warmup_holds_g(tiny_shapes, tmp_path):
    export = train(tiny_config(tiny_shapes), tmp_path / "a")
    src, _ = load_export(export)
    cfg = tiny_config(
        tiny_shapes,
        **{"train.init_from": str(export), "train.d_warmup_iters": 2, "train.total_iters": 2},
    )
    train(cfg, tmp_path / "b")
    b = load_checkpoint(tmp_path / "b" / "checkpoint-latest.pt")
    assert b["step"] == 2
    # two D-only iterations: G's weights and its EMA are the export's (G still runs forward
    # in train mode, so its batch-norm running statistics move)
    weights = [k for k, _ in build_generator(cfg).named_parameters()]
    for k in weights:
        assert torch.equal(b["generator"][k], src[k]), k
    for k, v in src.items():
        assert torch.equal(b["generator_ema"][k], v), k
    assert "initialised the generator from the export" in (tmp_path / "b" / "log.txt").read_text()
    rec = json.loads((tmp_path / "b" / "stats.jsonl").read_text().splitlines()[-1])
    assert "d_loss" in rec and "g_loss" not in rec
    # after the warm-up G trains
    cfg = tiny_config(
        tiny_shapes,
        **{"train.init_from": str(export), "train.d_warmup_iters": 1, "train.total_iters": 2},
    )
    train(cfg, tmp_path / "c")
    c = load_checkpoint(tmp_path / "c" / "checkpoint-latest.pt")
    assert any(not torch.equal(c["generator"][k], v) for k, v in src.items())
    with pytest.raises(ConfigError, match="d_warmup_iters"):
        tiny_config(tiny_shapes, **{"train.d_warmup_iters": -1})


def test_init_from_a_stage2_export_takes_its_stage1(tiny_shapes, tmp_path):
    s1 = train(tiny_config(tiny_shapes), tmp_path / "s1")
    s2 = train(
        tiny_config(tiny_shapes, stage=2, **{"model.stage1_checkpoint": str(s1)}), tmp_path / "s2"
    )
    train(tiny_config(tiny_shapes, **{"train.init_from": str(s2)}), tmp_path / "b")
    s1_state, _ = load_export(s1)
    b = load_checkpoint(tmp_path / "b" / "checkpoint-latest.pt")
    k = next(k for k in s1_state if k.endswith("weight") and s1_state[k].ndim == 4)
    # one G step from the Stage-I weights: near them, far from a fresh init's
    fresh = build_generator(tiny_config(tiny_shapes)).state_dict()[k]
    assert (b["generator"][k] - s1_state[k]).abs().mean() < (fresh - s1_state[k]).abs().mean()
    # a Stage-II run initialised from the Stage-II export keeps its own Stage-I
    b1 = tmp_path / "b" / "model.safetensors"
    cfg = tiny_config(
        tiny_shapes,
        stage=2,
        **{
            "model.stage1_checkpoint": str(b1),
            "train.init_from": str(s2),
            "train.d_warmup_iters": 1,
        },
    )
    train(cfg, tmp_path / "c")
    c = load_checkpoint(tmp_path / "c" / "checkpoint-latest.pt")["generator"]
    s2_state, _ = load_export(s2)
    b1_state, _ = load_export(b1)
    for key, v in c.items():
        if key.startswith("stage1.") and "num_batches" not in key and "running" not in key:
            assert torch.equal(v, b1_state[key.removeprefix("stage1.")]), key
        elif key.endswith("weight"):
            assert torch.equal(v, s2_state[key]), key  # one D-only iteration: Stage-II as given


def test_truncated_checkpoint_is_a_clear_error_and_resume_leaves_it(tiny_shapes, tmp_path):
    train(tiny_config(tiny_shapes), tmp_path / "r")
    path = tmp_path / "r" / "checkpoint-latest.pt"
    data = path.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(tiny_config(tiny_shapes, **{"train.total_iters": 2}), tmp_path / "r", resume=bad)
    assert path.read_bytes() == data  # the good checkpoint is untouched


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.fill_(0.0)
        b.weight.fill_(1.0)
    update_ema(a, b, 0.9)
    assert torch.allclose(a.weight, torch.full((2, 2), 0.1))
    update_ema(a, b, 0.0)
    assert torch.equal(a.weight, b.weight)


def test_ema_ramp_up_starts_as_a_copy_and_reaches_the_decay():
    import math

    from stackgan.train.ema import ramped_decay

    assert ramped_decay(0.999, 0.0, 0) == 0.999  # off
    assert ramped_decay(0.0, 0.05, 10) == 0.0  # a plain copy stays one
    assert ramped_decay(0.999, 0.05, 0) < 1e-5  # a half-life of 0.05 its: G itself
    # half-life 0.05 * 1000 = 50 iterations at iteration 999
    assert math.isclose(ramped_decay(0.999, 0.05, 999), 0.5 ** (1 / 50))
    decays = [ramped_decay(0.999, 0.05, s) for s in range(0, 30_000, 500)]
    assert decays == sorted(decays)  # it only lengthens
    assert (
        decays[-1]
        == ramped_decay(0.999, 0.05, 10**9)
        == 0.5 ** (1 / (math.log(0.5) / math.log(0.999)))
    )
    assert math.isclose(decays[-1], 0.999)
    with pytest.raises(ConfigError, match="ema_rampup"):
        load_config(None, ["train.ema_rampup=2"])


def test_ema_ramp_up_keeps_g_ema_near_g_early_in_a_run(tiny_shapes, tmp_path):
    """Three iterations from scratch: with the ramp-up g_ema is (almost) the trained G; with
    the plain 0.999 decay it is still (almost) the initialisation."""
    out = {}
    for rampup in (0.0, 0.05):
        cfg = tiny_config(
            tiny_shapes,
            **{"train.total_iters": 3, "train.ema_decay": 0.999, "train.ema_rampup": rampup},
        )
        train(cfg, tmp_path / f"r{rampup}")
        ck = torch.load(tmp_path / f"r{rampup}" / "checkpoint-latest.pt", weights_only=True)
        out[rampup] = max(
            float((ck["generator_ema"][k].float() - v.float()).abs().max())
            for k, v in ck["generator"].items()
            if v.is_floating_point()
        )
    assert out[0.05] < 0.01 * out[0.0]


def test_each_run_logs_to_its_own_folder(tiny_shapes, tmp_path):
    train(tiny_config(tiny_shapes), tmp_path / "a")
    train(tiny_config(tiny_shapes), tmp_path / "b")
    for run in ("a", "b"):
        assert "step 1" in (tmp_path / run / "log.txt").read_text()


def test_fp16_trains_with_a_loss_scaler_per_optimiser_and_resumes_it(tiny_shapes, tmp_path):
    from stackgan.utils.runtime import amp_dtype, cpu_prefers_bf16, grad_scaler

    cpu = torch.device("cpu")
    # what runs fastest on this CPU (tests/test_utils_runtime.py: how it is chosen)
    assert amp_dtype(cpu, "auto") == (torch.bfloat16 if cpu_prefers_bf16() else None)
    assert amp_dtype(cpu, "bf16") == torch.bfloat16 and grad_scaler(cpu, "bf16") is None
    assert grad_scaler(cpu, "fp16") is not None
    cfg = tiny_config(tiny_shapes, **{"train.amp": "fp16", "train.total_iters": 2})
    train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    scalers = ckpt["scaler"]
    assert scalers["generator"]["scale"] > 0 and len(scalers["discriminators"]) == 1
    ckpt["scaler"]["generator"]["scale"] = 1024.0  # a resume takes the scale it left with
    torch.save(ckpt, tmp_path / "run" / "checkpoint-latest.pt")
    more = tiny_config(tiny_shapes, **{"train.amp": "fp16", "train.total_iters": 3})
    train(more, tmp_path / "run", resume=tmp_path / "run" / "checkpoint-latest.pt")
    again = load_checkpoint(tmp_path / "run" / "checkpoint-latest.pt")
    assert again["step"] == 3 and again["scaler"]["generator"]["scale"] in (512.0, 1024.0, 2048.0)
    plain = load_checkpoint(tmp_path / "run" / "checkpoint-previous.pt")
    assert plain["scaler"]["generator"]  # fp16 checkpoints carry their scalers


@pytest.mark.parametrize("bundled", ["birds", "shapes"])
def test_stage2_trains_on_a_bundled_stage1_by_name(bundled):
    """model.stage1_checkpoint: birds is the Stage-I that ships in the package (the birds
    Stage-II preset's); a Stage-II model there (shapes) gives its own Stage-I."""
    from stackgan.checkpoint import load_export
    from stackgan.config import load_config
    from stackgan.pretrained import resolve_model
    from stackgan.train.setup import build_networks

    state, s1_cfg = load_export(resolve_model(bundled))
    if s1_cfg.model.stage == 2:
        state = {k.removeprefix("stage1."): v for k, v in state.items() if k.startswith("stage1.")}
    t, m = s1_cfg.text, s1_cfg.model
    sets = [f"text.encoder={t.encoder}", f"text.dim={t.dim}", "model.stage=2"]
    sets += [f"model.ngf={m.ngf}", f"model.ndf={m.ndf}", "model.ngf2=8", "model.ndf2=8"]
    sets += ["model.num_res_blocks=1", "model.stage2_img_size=128", "data.root=data/birds"]
    for name in (bundled, str(resolve_model(bundled))):
        cfg = load_config(None, [*sets, f"model.stage1_checkpoint={name}"])
        g, _, _ = build_networks(cfg, torch.device("cpu"), torch.contiguous_format)
        got = g.stage1.state_dict()
        assert set(got) == set(state)
        assert all(torch.equal(got[k], state[k].float()) for k in state)
