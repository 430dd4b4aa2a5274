"""The run folder: numbered, claimed once, never overwritten by accident, with its log."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from stackgan.config import ExperimentConfig
from stackgan.train.setup import MATCHER_FILE
from stackgan.train.state import PREVIOUS
from stackgan.train.ticks import STATS

logger = logging.getLogger(__name__)

LATEST = "checkpoint-latest.pt"
EXPORT = "model.safetensors"
BEST_EXPORT = "model-best.safetensors"  # the best g_ema by the training metric so far

# What a run writes: an existing folder holding any of these is a run, not overwritten silently
RUN_OUTPUTS = (LATEST, PREVIOUS, EXPORT, BEST_EXPORT, STATS)


class RunDirError(FileExistsError):
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
    for name in (*RUN_OUTPUTS, "log.txt", "captions-grid.txt", "distributed.json", MATCHER_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for sub in ("samples", "tensorboard"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    for old in run_dir.glob("config*.yaml"):
        old.unlink()
    logger.info("--overwrite: cleared the earlier run in %s", run_dir)


def setup_logging(run_dir: Path) -> logging.Handler:
    """Send the package's log to ``run_dir/log.txt`` for this run; the caller removes it."""
    root = logging.getLogger("stackgan")
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(run_dir / "log.txt")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    return fh
