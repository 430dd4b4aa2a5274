"""Training under torchrun: 2 processes on the CPU (gloo), DistributedDataParallel.

The 2-process run trains on the same global batch as a 1-process run (each rank its half), so
with batch statistics over both ranks (``train.sync_batchnorm``) its per-step losses equal the
1-process run's up to float rounding (stated tolerance: 1e-4 relative). It writes one run folder
(rank 0), and its checkpoint resumes with 1 process and with 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stackgan.checkpoint import load_checkpoint

from .conftest import tiny_overrides

TOLERANCE = 1e-4  # relative, per logged loss and step


def _cmd(nproc: int, cfg: Path, run_dir: Path, *extra: str) -> list[str]:
    launch = [sys.executable, "-m", "stackgan"]
    if nproc > 1:
        launch = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "stackgan",
        ]
    return [*launch, "train", str(cfg), "--run-dir", str(run_dir), *extra]


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


def _stats(run: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "tiny.yaml"
    path.write_text("name: tiny\n")  # everything else from --set
    return path


def _sets(root: Path, **extra: object) -> list[str]:
    items = tiny_overrides(root, **{"train.total_iters": 3, "train.batch_size": 8, **extra})
    return [arg for item in items for arg in ("--set", item)]


def test_two_processes_equal_one_with_the_same_global_batch_and_resume_with_any(
    config, tiny_shapes, tmp_path
):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(_cmd(1, config, one, *_sets(tiny_shapes)))
    ddp = {"train.batch_size": 4, "train.sync_batchnorm": True}
    _run(_cmd(2, config, two, *_sets(tiny_shapes, **ddp)))
    a, b = _stats(one), _stats(two)
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for k in ("d_real", "d_wrong", "d_fake", "d_loss", "g_adv", "kl", "g_loss"):
            assert rb[k] == pytest.approx(ra[k], rel=TOLERANCE), (ra["step"], k)
    info = json.loads((two / "distributed.json").read_text())
    assert info["world_size"] == 2 and info["global_batch"] == 8 and info["backend"] == "gloo"
    # one run folder, written by rank 0 alone; the weights match the 1-process run's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    ga = load_checkpoint(one / "checkpoint-latest.pt")["generator"]
    gb = load_checkpoint(two / "checkpoint-latest.pt")["generator"]
    assert all(torch.allclose(ga[k].float(), gb[k].float(), rtol=1e-3, atol=1e-5) for k in ga)
    # the 2-process checkpoint resumes with 1 process, then that one with 2
    _run(
        _cmd(
            1,
            config,
            two,
            *_sets(tiny_shapes, **{"train.total_iters": 4}),
            "--resume",
            str(two / "checkpoint-latest.pt"),
        )
    )
    assert json.loads((two / "distributed.json").read_text())["world_size"] == 1
    _run(
        _cmd(
            2,
            config,
            two,
            # a tick of 2 that total_iters cuts short: every rank must close it together
            *_sets(tiny_shapes, **{**ddp, "train.total_iters": 5, "train.tick_iters": 2}),
            "--resume",
            str(two / "checkpoint-latest.pt"),
        )
    )
    assert [r["step"] for r in _stats(two)] == [1, 2, 3, 4, 5]
    assert load_checkpoint(two / "checkpoint-latest.pt")["step"] == 5
