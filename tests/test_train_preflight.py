"""``stackgan train`` checks what it cheaply can before it creates a run folder, and prints a
short summary (the full config goes to the run folder and ``--dry-run``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stackgan.cli import main

from .conftest import tiny_overrides


def _train(config: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["train", config, *args])
    return res.exit_code, res.output


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


@pytest.mark.parametrize(
    ("config", "hint", "not_hint"),
    [
        ("configs/v1_shapes_stage1.yaml", "stackgan data shapes --out", "docs/data.md"),
        ("configs/v1_birds_stage1.yaml", "docs/data.md ('CUB-200-2011 birds')", "data shapes"),
        ("configs/v2_flowers_cpu.yaml", "Oxford-102", "data shapes"),
    ],
)
def test_missing_data_root_is_one_line_and_creates_no_run_folder(tmp_path, config, hint, not_hint):
    runs = tmp_path / "runs"
    code, out = _train(config, "--outdir", str(runs), "--set", f"data.root={tmp_path}/none")
    assert code != 0
    (line,) = _lines(out)  # one line, no traceback, no config dump
    assert "dataset folder not found" in line and hint in line and not_hint not in line, line
    assert not runs.exists() or not list(runs.iterdir())


def test_other_cheap_mistakes_create_no_run_folder(tmp_path, tiny_shapes):
    runs = tmp_path / "runs"
    base = [*(a for o in tiny_overrides(tiny_shapes) for a in ("--set", o)), "--outdir", str(runs)]
    cases = [
        (["--resume", str(tmp_path / "gone" / "checkpoint-latest.pt")], "no such checkpoint"),
        (["--set", "model.stage=2"], "model.stage1_checkpoint is required"),
        (
            ["--set", "model.stage=2", "--set", f"model.stage1_checkpoint={tmp_path}/s1.st"],
            "no such file",
        ),
        (["--set", f"text.encoder={tmp_path}/enc.safetensors"], "text.encoder"),
    ]
    for extra, message in cases:
        code, out = _train("configs/v1_shapes_stage1.yaml", *base, *extra)
        assert code != 0 and message in out and len(_lines(out)) == 1, (extra, out)
        assert not runs.exists() or not list(runs.iterdir()), extra


def test_a_run_prints_a_short_summary_and_writes_the_full_config(tmp_path, tiny_shapes):
    run = tmp_path / "my-run"
    sets = [a for o in tiny_overrides(tiny_shapes) for a in ("--set", o)]
    code, out = _train("configs/v1_shapes_stage1.yaml", *sets, "--run-dir", str(run))
    assert code == 0, out
    head = _lines(out.split("run directory:")[0])
    assert len(head) <= 4, head  # not the resolved config: that is ~80 lines
    assert head[0].startswith("config: configs/v1_shapes_stage1.yaml")
    assert "(train split, 49 images, 490 captions); text: minilm (384-d)" in head[1], head
    assert "g_lr:" not in out  # the YAML stays in the run folder
    assert "g_lr:" in (run / "config.yaml").read_text()
    assert (run / "model.safetensors").is_file()
    assert Path(run).name == "my-run"  # the folder asked for, not a numbered one


def test_a_pack_without_the_metric_size_is_refused_before_training(tmp_path, tiny_shapes):
    """Training reads a pack at its load size (38 px for a 32 px output with random crops), the
    metrics read the test photos at the output size: a pack without the latter stops the run
    at once, not at its first metric tick an hour in (it did, once)."""
    from stackgan.config import load_config
    from stackgan.data.packed import pack_dataset
    from stackgan.train.preflight import preflight

    pack = tmp_path / "s.pack"
    pack_dataset(tiny_shapes, pack, [38], progress=False)
    runs = tmp_path / "runs"
    sets = [*tiny_overrides(tiny_shapes), f"data.root={pack}", "data.random_crop=true"]
    sets += ["model.version=v2", "model.num_branches=2"]  # 16 and 32 px
    scored = ["train.metric_ticks=1", "train.metrics=[fid]"]
    args = [a for o in [*sets, *scored] for a in ("--set", o)]
    code, out = _train("configs/v1_shapes_stage1.yaml", *args, "--outdir", str(runs))
    assert code != 0
    (line,) = _lines(out)
    assert "holds 38px" in line and "metrics read 32px, 38px" in line, line
    assert "--sizes 32,38" in line, line
    assert not runs.exists() or not list(runs.iterdir())
    # without metrics the pack has all training reads
    preflight(load_config(None, [*sets, "train.metric_ticks=0"]))
