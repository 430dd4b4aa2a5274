"""Shared fixtures: a tiny shapes dataset and tiny-width configs (everything on CPU, seeded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stackgan.config import ExperimentConfig, load_config
from stackgan.data.shapes import write_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"
BIRDS = SHARED / "data" / "birds-cub50"


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 shapes images at 64px (enough for 16/32/64 px models), written once per session."""
    return write_dataset(
        tmp_path_factory.mktemp("data") / "shapes", 60, seed=1, size=64, progress=False
    )


def tiny_overrides(root: Path, stage: int = 1, **extra: object) -> list[str]:
    items = {
        "data.name": "shapes",
        "data.root": str(root),
        "data.bbox_crop": False,
        "data.random_crop": False,
        "data.random_flip": False,
        "model.stage": stage,
        "model.z_dim": 8,
        "model.cond_dim": 8,
        "model.ngf": 4,
        "model.ndf": 4,
        "model.ngf2": 4,
        "model.ndf2": 4,
        "model.disc_text_dim": 8,
        "model.num_res_blocks": 1,
        "model.stage1_img_size": 16,
        "model.stage2_img_size": 32,
        "train.batch_size": 4,
        "train.total_iters": 1,
        "train.tick_iters": 1,
        "train.progress": False,
        "train.tensorboard": False,
        "train.amp": "off",
        "train.device": "cpu",
    }
    items.update(extra)
    out = []
    for k, v in items.items():
        v = str(v).lower() if isinstance(v, bool) else v
        out.append(f"{k}={v}")
    return out


def tiny_config(root: Path, stage: int = 1, **extra: object) -> ExperimentConfig:
    return load_config(None, tiny_overrides(root, stage, **extra))


class MeanColour(torch.nn.Module):
    """A stand-in feature network: per-channel mean and std (6-d), counting its calls."""

    name = "meancolour-test"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)
