"""The run folder: every file and folder a run writes, by name; numbered, claimed once, never
overwritten by accident, with its log.

This module owns the names: the rest of ``train/`` and the CLI import them from here
(docs/training.md, "Run folders", describes the same layout for users).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from stackgan.config import ExperimentConfig
from stackgan.errors import StackGANError

logger = logging.getLogger(__name__)

# -- the layout of a run folder --------------------------------------------------------------
LATEST = "checkpoint-latest.pt"  # the full training state, written every checkpoint tick
PREVIOUS = "checkpoint-previous.pt"  # the checkpoint before the latest: never one copy only
EXPORT = "model.safetensors"  # the g_ema inference export (what `stackgan sample` loads)
BEST_EXPORT = "model-best.safetensors"  # the best g_ema by the training metric so far
STATS = "stats.jsonl"  # one JSON line of scalars per tick
CONFIG = "config.yaml"  # the resolved config of the run (as it runs now)
CONFIG_GLOB = "config*.yaml"  # with the configs of earlier legs of a resumed run
LOG = "log.txt"  # the package's log for this run
DISTRIBUTED = "distributed.json"  # world size and the global batch (multi-process runs)
MATCHER_FILE = "image-matcher.safetensors"  # the frozen encoder of loss.match_weight
GRID_CAPTIONS = "captions-grid.txt"  # the captions of the fixed sample grid, one per row
SAMPLES_DIR = "samples"  # the sample grid per tick: samples/grid-0000100.png, ...
GRID_GLOB = "grid-*.png"  # the grids in SAMPLES_DIR
TENSORBOARD_DIR = "tensorboard"  # event files when train.tensorboard is on


def config_until(step: int) -> str:
    """The name an earlier leg's ``config.yaml`` is kept under when a resumed run changes it."""
    return f"config-until-{step:07d}.yaml"


def grid_file(step: int) -> str:
    """The sample grid of iteration ``step``, inside ``SAMPLES_DIR``."""
    return f"grid-{step:07d}.png"


# What a run writes: an existing folder holding any of these is a run, not overwritten silently
RUN_OUTPUTS = (LATEST, PREVIOUS, EXPORT, BEST_EXPORT, STATS)
# What --overwrite clears besides RUN_OUTPUTS and the configs (the metric-*.jsonl lines stay)
RUN_FILES = (LOG, GRID_CAPTIONS, DISTRIBUTED, MATCHER_FILE)
RUN_FOLDERS = (SAMPLES_DIR, TENSORBOARD_DIR)


class RunDirError(StackGANError, FileExistsError):
    """A run folder that already holds a run, given without --resume or --overwrite."""


def make_run_dir(outdir: str | Path, cfg: ExperimentConfig) -> Path:
    """A new numbered, descriptive run folder: ``00003-v1-shapes-stage1-bs64``.

    The number is claimed under a lock on ``outdir/.lock`` (where the OS has ``fcntl``), so two
    runs started at the same moment get two numbers."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    mc = cfg.model
    arch = f"stage{mc.stage}" if mc.version == "v1" else f"{mc.num_branches}branch"
    mode = "" if mc.conditional else "-uncond"
    desc = f"{mc.version}-{cfg.data.name}-{arch}{mode}-bs{cfg.train.batch_size}"
    with open(outdir / ".lock", "a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no lock; the exclusive mkdir below still never reuses one
            pass
        while True:
            ids = [
                int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"^(\d{5})-", p.name))
            ]
            run_dir = outdir / f"{max(ids, default=-1) + 1:05d}-{desc}"
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue


def claim_run_dir(run_dir: Path, resume: str | Path | None, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one (``--resume`` continues it, ``overwrite``
    clears its outputs first)."""
    found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    if not found or resume is not None:
        return
    if not overwrite and not (run_dir / LATEST).exists() and not (run_dir / PREVIOUS).exists():
        # killed before its first checkpoint: there is nothing to --resume
        raise RunDirError(
            f"{run_dir} holds a run stopped before its first checkpoint ({', '.join(found)}); "
            "nothing to resume: pass --overwrite to start it again"
        )
    if not overwrite:
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with "
            f"--resume {run_dir / LATEST}, or pass --overwrite to replace it"
        )
    for name in (*RUN_OUTPUTS, *RUN_FILES):
        (run_dir / name).unlink(missing_ok=True)
    for sub in RUN_FOLDERS:
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    for old in run_dir.glob(CONFIG_GLOB):
        old.unlink()
    logger.info("--overwrite: cleared the earlier run in %s", run_dir)


def setup_logging(run_dir: Path) -> logging.Handler:
    """Send the package's log to ``run_dir/log.txt`` (``LOG``) for this run; the caller removes
    it."""
    root = logging.getLogger("stackgan")
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(run_dir / LOG)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    return fh
