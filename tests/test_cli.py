import json
import pickle

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stackgan.checkpoint import export_generator
from stackgan.cli import main

from .conftest import tiny_config, tiny_overrides


@pytest.fixture(scope="module")
def tiny_model(tiny_shapes, tmp_path_factory):
    """A tiny Stage-I model trained for one iteration through the CLI."""
    out = tmp_path_factory.mktemp("runs")
    args = ["train", "--outdir", str(out)]
    # CONFIG argument: an empty YAML file, everything else from --set
    cfg = out / "tiny.yaml"
    cfg.write_text("name: tiny\n")
    args.insert(1, str(cfg))
    for o in tiny_overrides(tiny_shapes):
        args += ["--set", o]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert run.name.startswith("00000-v1-shapes-stage1-bs4")
    return run / "model.safetensors"


def test_train_dry_run_prints_resolved_config(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "train",
            "configs/v1_shapes_stage1.yaml",
            "--dry-run",
            "--set",
            "optim.g_lr=1e-4",
            "--outdir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "g_lr: 0.0001" in res.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_config_errors_are_one_clear_line(tmp_path):
    res = CliRunner().invoke(
        main, ["train", "configs/v1_shapes_stage1.yaml", "--dry-run", "--set", "model.ngff=4"]
    )
    assert res.exit_code != 0 and "unknown config key model.ngff" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["train", "nope.yaml", "--dry-run"])
    assert res.exit_code != 0 and "config file not found: nope.yaml" in res.output


def test_missing_dataset_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "train",
            "configs/v1_shapes_stage1.yaml",
            "--outdir",
            str(tmp_path),
            "--set",
            f"data.root={tmp_path}/none",
        ],
    )
    assert res.exit_code != 0 and "dataset folder not found" in res.output


def test_data_shapes_command(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "data",
            "shapes",
            "--out",
            str(tmp_path / "s"),
            "--num",
            "12",
            "--size",
            "32",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    with open(tmp_path / "s" / "train" / "filenames.pickle", "rb") as f:
        assert len(pickle.load(f)) > 0
    res = CliRunner().invoke(main, ["data", "shapes", "--out", str(tmp_path / "s"), "--num", "5"])
    assert res.exit_code != 0 and "not empty" in res.output


def test_sample_contract(tiny_model, tmp_path):
    caps = tmp_path / "caps.txt"
    caps.write_text("a red star\n\n   \na tiny blue circle on a grey background\nbig box\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        [
            "sample",
            "--captions",
            str(caps),
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--seed",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["0000.png", "0001.png", "0002.png", "grid.png"]
    assert Image.open(out / "0000.png").size == (16, 16)  # the model's highest resolution
    # same seed -> same images
    out2 = tmp_path / "out2"
    CliRunner().invoke(
        main,
        [
            "sample",
            "--captions",
            str(caps),
            "--out",
            str(out2),
            "--model",
            str(tiny_model),
            "--seed",
            "1",
        ],
    )
    assert (out / "0001.png").read_bytes() == (out2 / "0001.png").read_bytes()


def test_sample_positional_caption_and_bad_input(tiny_model, tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(
        main,
        [
            "sample",
            "a green diamond",
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--save-stages",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "0000.png").exists() and (out / "stage1" / "0000.png").exists()
    r = CliRunner().invoke(
        main, ["sample", "x" * 10_000, "--out", str(out), "--model", str(tiny_model)]
    )
    assert r.exit_code != 0 and "10000 characters" in r.output
    r = CliRunner().invoke(main, ["sample", "  ", "--out", str(out), "--model", str(tiny_model)])
    assert r.exit_code != 0 and "caption 0 is empty" in r.output
    r = CliRunner().invoke(main, ["sample", "--out", str(out), "--model", str(tiny_model)])
    assert r.exit_code != 0 and "give a caption" in r.output
    r = CliRunner().invoke(
        main, ["sample", "--captions", str(tmp_path / "none.txt"), "--model", str(tiny_model)]
    )
    assert r.exit_code != 0 and "captions file not found" in r.output


def test_truncated_model_file_is_a_clear_error(tiny_model, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_model.read_bytes()[:200])
    r = CliRunner().invoke(
        main, ["sample", "a red star", "--model", str(bad), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code != 0 and "truncated or corrupt" in r.output


def test_export_command(tiny_model, tmp_path):
    ckpt = tiny_model.parent / "checkpoint-latest.pt"
    out = tmp_path / "half.safetensors"
    r = CliRunner().invoke(main, ["export", str(ckpt), "--out", str(out), "--half"])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size < tiny_model.stat().st_size


def test_export_swaps_the_stage1_of_a_stage2_model(tiny_model, tiny_shapes, tmp_path):
    from stackgan.checkpoint import load_export
    from stackgan.models.registry import build_generator
    from stackgan.train import train

    s2 = train(
        tiny_config(tiny_shapes, stage=2, **{"model.stage1_checkpoint": str(tiny_model)}),
        tmp_path / "s2",
    )
    other = tmp_path / "other-s1.safetensors"  # another Stage-I: fresh weights
    export_generator(
        other, build_generator(tiny_config(tiny_shapes)).state_dict(), tiny_config(tiny_shapes)
    )
    out = tmp_path / "swapped.safetensors"
    r = CliRunner().invoke(main, ["export", str(s2), "--out", str(out), "--stage1", str(other)])
    assert r.exit_code == 0, r.output
    new, cfg = load_export(out)
    old, _ = load_export(s2)
    s1, _ = load_export(other)
    assert cfg.model.stage1_checkpoint == str(other)
    for k, v in new.items():
        want = s1[k.removeprefix("stage1.")] if k.startswith("stage1.") else old[k]
        assert torch.equal(v, want), k
    bad = CliRunner().invoke(
        main, ["export", str(other), "--out", str(out), "--stage1", str(other)]
    )
    assert bad.exit_code != 0 and "needs a v1 Stage-II model" in bad.output


def test_consistency_command(tiny_model, tiny_shapes, tmp_path):
    out = tmp_path / "not-yet" / "c.json"  # a missing folder is created
    r = CliRunner().invoke(
        main,
        [
            "consistency",
            "--model",
            str(tiny_model),
            "--data",
            str(tiny_shapes),
            "--num",
            "5",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["num_images"] == 5 and 0 <= res["object_color_acc"] <= 1


def test_demo_writes_a_gallery_and_trains(tiny_model, tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(
        main,
        [
            "demo",
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--num-images",
            "40",
            "--num-captions",
            "3",
            "--train-iters",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    page = (out / "index.html").read_text()
    from stackgan.pretrained import PRETRAINED

    n_birds = len(PRETRAINED["birds"].examples)
    # header + 3 captions, then the birds gallery: its header (which stage, which sample) + rows
    assert page.count("<tr>") == 4 + 1 + n_birds
    assert "<th>Stage-II (256 px), sample 2</th>" in page
    assert "Birds: new sentences" in page and PRETRAINED["birds"].examples[0] in page
    for s in (1,):
        assert (out / "images" / f"000-stage{s}.png").exists()
    assert "consistency.json" in {p.name for p in out.iterdir()}
    assert "2 iterations of Stage-I" in page
    img_srcs = [seg.split('"')[0] for seg in page.split('src="')[1:]]
    assert img_srcs and all((out / src).exists() for src in img_srcs)  # every image resolves


def test_text_encoder_train_eval_and_extract_commands(tiny_shapes, tiny_model, tmp_path):
    """`text-encoder train` then `text-encoder eval` on real Inception pool3 features."""
    from stackgan.metrics.base import MetricError
    from stackgan.metrics.features import default_network_path

    try:
        default_network_path()
    except MetricError as exc:
        pytest.skip(str(exc))
    enc = tmp_path / "enc.safetensors"
    args = ["text-encoder", "train", "--data", str(tiny_shapes), "--out", str(enc)]
    res = CliRunner().invoke(main, [*args, "--epochs", "2", "--buckets", "512"])
    assert res.exit_code == 0, res.output
    assert f"wrote {enc}: 256-d" in res.output
    from stackgan.text.trainable import TrainedTextEncoder

    assert TrainedTextEncoder(enc).matcher.text.buckets == 512
    bad = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "enc.pt")])
    assert bad.exit_code != 0 and "must end in .safetensors" in bad.output
    out = tmp_path / "r.json"
    evals = ["text-encoder", "eval", "--data", str(tiny_shapes), "--encoder", str(enc)]
    res = CliRunner().invoke(main, [*evals, "--encoder", "random", "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads(out.read_text())
    rows = results["encoders"]
    assert [r["encoder"] for r in rows] == [str(enc), "random"]
    for r in rows:
        assert 0 <= r["top1"] <= r["top5"] <= 1 and 0 <= r["r_precision"] <= 1
    (pair,) = results["paired"]
    assert (pair["a"], pair["b"]) == (str(enc), "random")
    assert pair["ci95_low"] <= pair["difference"] <= pair["ci95_high"]
    assert 0 <= pair["mcnemar_p"] <= 1
    assert "R-precision" in res.output and "McNemar" in res.output
    # a GAN export embeds its trained encoder; `extract` writes it back out, same embeddings
    from stackgan.models.registry import build_generator

    cfg = tiny_config(tiny_shapes, **{"text.encoder": str(enc), "text.dim": 256})
    model = tmp_path / "m.safetensors"
    export_generator(model, build_generator(cfg).state_dict(), cfg)
    back = tmp_path / "back.safetensors"
    res = CliRunner().invoke(main, ["text-encoder", "extract", str(model), "--out", str(back)])
    assert res.exit_code == 0, res.output
    caps = ["a red star on a sand background"]
    a, b = TrainedTextEncoder(enc).encode(caps), TrainedTextEncoder(back).encode(caps)
    assert torch.equal(a, b)
    res = CliRunner().invoke(main, ["text-encoder", "extract", str(tiny_model), "--out", str(back)])
    assert res.exit_code != 0 and "embeds no text encoder" in res.output


def test_dry_run_needs_no_device(tmp_path):
    """--dry-run prints the config without touching the device (a GPU config on a CPU box)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\n")
    r = CliRunner().invoke(main, ["train", str(cfg), "--set", "train.device=cuda", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "device: cuda" in r.output
