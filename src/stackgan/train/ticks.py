"""What a run does on its ticks, apart from training: the fixed sample grid, ``stats.jsonl`` and
TensorBoard, ``config.yaml``, and keeping the log consistent across resumes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.data.dataset import TextImageDataset
from stackgan.data.folder import ImageFolderDataset
from stackgan.errors import TrainingError
from stackgan.train.rundir import (
    CONFIG,
    GRID_CAPTIONS,
    SAMPLES_DIR,
    STATS,
    TENSORBOARD_DIR,
    config_until,
    grid_file,
)
from stackgan.utils.cache import atomic_write
from stackgan.utils.distributed import DistInfo, sum_across
from stackgan.utils.images import make_grid, resize_to, save_png, to_uint8

logger = logging.getLogger(__name__)

GRID_CAPTIONS_PER_ROW = {1: 8, 2: 2}  # by number of stages shown side by side


class SampleGrid:
    """The grid of fixed captions and fixed noise the run draws each tick (stages of a caption
    side by side; unconditional: of a noise vector), with its captions in
    ``captions-grid.txt``."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        ds: TextImageDataset | ImageFolderDataset,
        emb: torch.Tensor | None,
        run_dir: Path,
        device: torch.device,
    ) -> None:
        n = cfg.train.num_grid_captions
        if isinstance(ds, ImageFolderDataset):
            caps = torch.zeros(n, dtype=torch.long)  # no text: the grid is n noise vectors
        else:  # the first caption of n evenly spaced images
            caps = ds.caption_offsets[torch.linspace(0, len(ds) - 1, min(n, len(ds))).long()]
        gen = torch.Generator().manual_seed(cfg.train.seed + 1)
        self.z = torch.randn(len(caps), cfg.model.z_dim, generator=gen).to(device)
        self.eps = torch.randn(len(caps), cfg.model.cond_dim, generator=gen).to(device)
        self.text = None
        self.folder = run_dir / SAMPLES_DIR
        self.folder.mkdir(exist_ok=True)
        if emb is not None and isinstance(ds, TextImageDataset):
            self.text = emb[caps.to(device)]
            (run_dir / GRID_CAPTIONS).write_text(
                "\n".join(ds.captions[int(i)] for i in caps) + "\n"
            )

    @torch.no_grad()
    def save(self, g_ema: nn.Module, step: int, autocast: Any) -> Path:
        with autocast():
            out = g_ema(self.z, self.text, self.eps if self.text is not None else None)
        size = out.images[-1].shape[-1]
        cols = [to_uint8(resize_to(im, size)) for im in out.images]  # each (B, S, S, 3)
        tiles = np.stack(cols, axis=1).reshape(-1, size, size, 3)  # stages of a caption adjacent
        per_row = GRID_CAPTIONS_PER_ROW[min(len(cols), 2)]
        path = self.folder / grid_file(step)
        save_png(make_grid(tiles, nrow=len(cols) * per_row), path)
        return path


class TickStats:
    """The losses of a tick's iterations, kept on the device until the tick.

    Each iteration's scalars are stacked into one tensor where they were computed (one small
    kernel, no host synchronisation); :meth:`finish` reads them all at once, averages them
    over the ranks (one all-reduce per tick) and stops training on a non-finite value, naming
    the loss and the iteration it first appeared at. So a GPU step never waits for the host
    outside ticks, and the means are the same float64 means of the same fp32 values as
    before (``np.mean`` of each loss over the tick)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.rows: list[tuple[tuple[str, ...], torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, stats: dict[str, torch.Tensor]) -> None:
        keys = tuple(stats)
        self.steps.append(step)
        self.rows.append((keys, torch.stack([stats[k].detach().double() for k in keys])))

    def finish(self, dist: DistInfo, run_dir: Path) -> dict[str, float]:
        """The tick's mean of each loss (over iterations and ranks); a TrainingError at the
        first non-finite value. Every rank calls it at the same iterations."""
        if not self.rows:
            return {}
        # one transfer per distinct set of keys (a D warm-up or a lazy R1 step adds a set)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (keys, _) in enumerate(self.rows):
            groups.setdefault(keys, []).append(i)
        values: dict[int, dict[str, float]] = {}
        for keys, rows in sorted(groups.items()):
            mat = sum_across(torch.stack([self.rows[i][1] for i in rows]), dist)
            for i, row in zip(rows, (mat / dist.world_size).cpu().tolist()):
                values[i] = dict(zip(keys, row))
        for i in range(len(self.rows)):
            bad = [k for k, v in values[i].items() if not np.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"non-finite {bad[0]} ({values[i][bad[0]]}) at iteration {self.steps[i]}: "
                    f"training stopped; the last checkpoint and export in {run_dir} are left "
                    "as they were"
                )
        per_key: dict[str, list[float]] = {}
        for i in range(len(self.rows)):
            for k, v in values[i].items():
                per_key.setdefault(k, []).append(v)
        self.steps, self.rows = [], []
        return {k: float(np.mean(v)) for k, v in per_key.items()}


class StatsLog:
    """``stats.jsonl`` (one record per tick) and, when asked, TensorBoard. On a resume, the
    records and events logged after the checkpoint (ticks that ran before an interruption) are
    dropped, so each tick appears once."""

    def __init__(self, run_dir: Path, step: int, resumed: bool, tensorboard: bool) -> None:
        truncate_stats(run_dir / STATS, step)
        self.writer = _tensorboard(run_dir, step if resumed else None) if tensorboard else None
        self.file = open(run_dir / STATS, "a")  # noqa: SIM115 (closed by close())

    def write(self, record: dict[str, Any], means: dict[str, float]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            step = record["step"]
            for k, v in means.items():
                self.writer.add_scalar(f"loss/{k}", v, step)
            self.writer.add_scalar("progress/sec_per_iter", record["sec_per_iter"], step)
            for k, v in record.items():
                if k.startswith("metric/"):
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def truncate_stats(path: Path, step: int) -> None:
    """Keep the records of ``stats.jsonl`` up to ``step`` (and drop a line cut by a kill)."""
    if not path.exists():
        return
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            ok = int(json.loads(line)["step"]) <= step
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write(path, lambda tmp: tmp.write_text("".join(ln + "\n" for ln in keep)))
        logger.info("stats.jsonl: dropped %d records past iteration %d", dropped, step)


def _tensorboard(run_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.warning(
            "tensorboard is not installed; scalars go to stats.jsonl only "
            "(pip install 'stackgan[tensorboard]')"
        )
        return None
    # purge_step: a resume hides the events logged after its checkpoint, as stats.jsonl drops them
    return SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=purge_step)


def write_config(run_dir: Path, cfg: ExperimentConfig, step: int) -> None:
    """``config.yaml`` of the run; a resume with other settings keeps the config the earlier
    iterations ran with as ``config-until-<step>.yaml``, so the run's history stays readable."""
    path, text = run_dir / CONFIG, cfg.to_yaml()
    if path.exists() and path.read_text() != text:
        path.replace(run_dir / config_until(step))
        logger.info("settings changed at iteration %d; earlier ones kept beside config.yaml", step)
    path.write_text(text)
