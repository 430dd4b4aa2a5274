"""``train(cfg, run_dir)``: the StackGAN training loop, in numbered sections.

Progress is counted in iterations; logging, the sample grid and checkpoints run on fixed ticks.
The learning rate is halved every ``optim.lr_decay_epochs`` epochs, as the paper does.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stackgan.augment import make_augment
from stackgan.checkpoint import export_generator
from stackgan.checkpoint import load_generator_weights as load_generator_weights  # (old home)
from stackgan.config import ExperimentConfig
from stackgan.data.negatives import wrong_text
from stackgan.train.ema import update_ema
from stackgan.train.monitor import MetricMonitor
from stackgan.train.setup import MATCHER_FILE, TrainData, build_data, build_networks, image_matcher
from stackgan.train.state import (
    PREVIOUS,
    TrainState,
    build_state,
    init_networks,
    restore_state,
    save_state,
)
from stackgan.train.steps import Augment, Autocast, d_step, g_step
from stackgan.train.ticks import STATS, SampleGrid, StatsLog, write_config
from stackgan.utils.cache import remove_stale_temporaries
from stackgan.utils.runtime import autocast_factory, resolve_device, seed_everything

logger = logging.getLogger(__name__)

LATEST = "checkpoint-latest.pt"
# What a run writes: an existing folder holding any of these is a run, not overwritten silently
RUN_OUTPUTS = (LATEST, PREVIOUS, "model.safetensors", "model-best.safetensors", STATS)
EXPORT = "model.safetensors"
BEST_EXPORT = "model-best.safetensors"  # the best g_ema by the training metric so far


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss or weight); names the iteration."""


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


def _claim_run_dir(run_dir: Path, resume: str | Path | None, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one (``--resume`` continues it, ``overwrite``
    clears its outputs first)."""
    found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    if not found or resume is not None:
        return
    if not overwrite:
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(found)}): continue it with "
            f"--resume {run_dir / LATEST}, or pass --overwrite to replace it"
        )
    for name in (*RUN_OUTPUTS, "log.txt", "captions-grid.txt", MATCHER_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for sub in ("samples", "tensorboard"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    for old in run_dir.glob("config*.yaml"):
        old.unlink()
    logger.info("--overwrite: cleared the earlier run in %s", run_dir)


def _setup_logging(run_dir: Path) -> logging.Handler:
    """Send the package's log to ``run_dir/log.txt`` for this run; the caller removes it."""
    root = logging.getLogger("stackgan")
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(run_dir / "log.txt")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    return fh


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    resume: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Train one StackGAN stage as ``cfg`` says, writing everything under ``run_dir``.

    Args:
        cfg: the experiment configuration.
        run_dir: output folder (config.yaml, log.txt, stats.jsonl, samples/, checkpoints).
        resume: a training checkpoint to continue from (its config must match ``cfg``'s model).
            When it fails verification, ``checkpoint-previous.pt`` beside it is used instead.
        overwrite: start afresh in a ``run_dir`` that holds an earlier run, deleting its outputs
            (without it, and without ``resume``, such a folder is refused).

    Returns:
        Path of the final inference export (``run_dir/model.safetensors``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _claim_run_dir(run_dir, resume, overwrite)
    for tmp in remove_stale_temporaries(run_dir):
        logger.info("removed %s, left by a run killed mid-write", tmp.name)
    log_handler = _setup_logging(run_dir)
    try:
        return _train(cfg, run_dir, resume)
    except Exception as exc:
        # the console gets the error from the caller; log.txt keeps it with the run
        record = logging.getLogger("stackgan").makeRecord(
            "stackgan",
            logging.ERROR,
            __file__,
            0,
            "training failed: %s: %s",
            (type(exc).__name__, exc),
            None,
        )
        log_handler.handle(record)
        raise
    finally:
        logging.getLogger("stackgan").removeHandler(log_handler)
        log_handler.close()
        remove_stale_temporaries(run_dir)


@dataclass
class _Runtime:
    """How the run computes: device, mixed precision, memory layout, D input augmentation."""

    device: torch.device
    autocast: Autocast
    memory_format: torch.memory_format
    augment: Augment | None


def _train(cfg: ExperimentConfig, run_dir: Path, resume: str | Path | None) -> Path:
    tc = cfg.train

    # 1. Runtime: device, seeds, precision -------------------------------------------------------
    device = resolve_device(tc.device)
    seed_everything(tc.seed)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    rt = _Runtime(device, autocast_factory(device, tc.amp), fmt, make_augment(cfg.loss.augment))
    logger.info("training stage %d on %s (amp=%s)", cfg.model.stage, device, tc.amp)

    # 2. Data: images, caption embeddings, colour-swapped negatives -----------------------------
    data = build_data(cfg, device)

    # 3. Networks and phases: one D phase per discriminator, then G, each with its optimiser -----
    generator, discriminators, g_ema = build_networks(cfg, device, fmt)
    state = build_state(cfg, generator, g_ema, discriminators, device)

    # 4. Resume, or start from another run's weights ---------------------------------------------
    if resume is not None:
        restore_state(Path(resume), cfg, state)
    elif tc.init_from:
        init_networks(tc.init_from, cfg, state)
    matcher = image_matcher(cfg, run_dir, data, device, rt.augment)
    write_config(run_dir, cfg, state.step)

    # 5. Loop, with maintenance on ticks ---------------------------------------------------------
    _fit(cfg, run_dir, data, state, matcher, rt, resumed=resume is not None)
    return run_dir / EXPORT


def _fit(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: _Runtime,
    resumed: bool,
) -> None:
    """Iterate to ``train.total_iters`` (or the time budget), with a tick every
    ``train.tick_iters``: stats, the sample grid, the metric, checkpoints and exports."""
    tc = cfg.train
    grid = SampleGrid(cfg, data.ds, data.emb, run_dir, rt.device)
    monitor = MetricMonitor(cfg, rt.device, data.text_encoder, run_dir) if tc.metric_ticks else None
    if monitor is not None and state.metric_best is not None:
        # a resume must not replace model-best.safetensors with a worse model
        monitor.restore_best(state.metric_best)
    log = StatsLog(run_dir, state.step, resumed, tc.tensorboard)
    pbar = None
    if tc.progress:
        from tqdm import tqdm

        pbar = tqdm(total=tc.total_iters, initial=state.step, desc=cfg.name, unit="it")
    tick_stats: dict[str, list[float]] = {}
    tick_start = time.time()
    budget_s = tc.time_budget_min * 60
    try:
        while state.step < tc.total_iters:
            iter_start = time.time()
            stats = _iteration(cfg, data, state, matcher, rt)
            state.step += 1
            state.train_seconds += time.time() - iter_start
            bad = [k for k, v in stats.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"non-finite {bad[0]} ({stats[bad[0]]}) at iteration {state.step}: training "
                    f"stopped; the last checkpoint and export in {run_dir} are left as they were"
                )
            for k, v in stats.items():
                tick_stats.setdefault(k, []).append(v)
            if pbar is not None:
                pbar.update(1)
                if state.step % 10 == 0:
                    pbar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats.get('g_loss', 0):.3f}")
            out_of_time = budget_s > 0 and state.train_seconds >= budget_s
            done = state.step >= tc.total_iters or out_of_time
            if state.step % tc.tick_iters == 0 or done:
                elapsed = time.time() - tick_start
                _tick(cfg, run_dir, data, state, rt, grid, monitor, log, tick_stats, elapsed, done)
                tick_stats = {}
                tick_start = time.time()
            if out_of_time:
                logger.info(
                    "time budget of %g min spent at iteration %d", tc.time_budget_min, state.step
                )
                break
    finally:
        if pbar is not None:
            pbar.close()
        log.close()


def _iteration(
    cfg: ExperimentConfig,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: _Runtime,
) -> dict[str, float]:
    """One iteration: a batch, G's images, each D phase, then the G phase and the EMA."""
    tc, oc, lc = cfg.train, cfg.optim, cfg.loss
    ds, step = data.ds, state.step
    # 1. the batch: a fresh shuffle each epoch, reproducible from the step
    iters_per_epoch = math.ceil(len(ds) / tc.batch_size)
    epoch, pos = divmod(step, iters_per_epoch)
    perm_gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch)
    perm = torch.randperm(len(ds), generator=perm_gen)
    idx = perm[pos * tc.batch_size : (pos + 1) * tc.batch_size]
    if len(idx) < 2:  # a last partial batch of one cannot form a mismatched pair
        idx = perm[: tc.batch_size]
    lr_scale = oc.lr_decay_factor ** (epoch // max(oc.lr_decay_epochs, 1))  # halved per 100 ep.
    state.set_lr(oc.g_lr * lr_scale, oc.d_lr * lr_scale)
    batch = ds.sample(idx, data.sizes, state.data_gen)
    reals = [
        im.to(rt.device, non_blocking=True).contiguous(memory_format=rt.memory_format)
        for im in batch.images
    ]
    # 2. the text: right captions, and mismatched ones for the matching-aware D
    text = wrong = None
    if data.emb is not None and data.text is not None:
        assert batch.caption_idx is not None and batch.wrong_caption_idx is not None
        text = data.emb[batch.caption_idx.to(rt.device)]
        wrong = wrong_text(
            data.text,
            idx,
            batch.caption_idx,
            batch.wrong_caption_idx,
            data.emb,
            state.data_gen,
            wrong_candidates=lc.wrong_candidates,
            swap_negatives=lc.swap_negatives,
            swap_emb=data.swap_emb,
            swap_ok=data.swap_ok,
            swap_variants=lc.swap_variants,
        )
    # 3. G's images, once: every D phase trains on them (detached), then the G phase
    z = torch.randn(len(idx), cfg.model.z_dim, device=rt.device)
    with rt.autocast():
        out = state.generator(z, text)
    fakes = out.images[-len(state.d_phases) :]  # v1 Stage-II: D sees only the 256 image
    stats: dict[str, float] = {}
    r1_gamma = lc.r1_gamma * lc.r1_interval if step % lc.r1_interval == 0 else 0.0  # lazy R1
    for i, (ph, real, fake) in enumerate(zip(state.d_phases, reals, fakes)):
        d_stats = d_step(
            ph.module,  # type: ignore[arg-type]
            ph.opt,
            real,
            fake,
            text,
            wrong,
            wrong_fake_weight=lc.wrong_fake_weight,
            uncond_weight=lc.uncond_weight,
            autocast=rt.autocast,
            augment=rt.augment,
            r1_gamma=r1_gamma,
            scaler=ph.scaler,
        )
        suffix = f"_{i}" if len(state.d_phases) > 1 else ""
        stats.update({f"{k}{suffix}": v for k, v in d_stats.items()})
    if len(state.d_phases) > 1:
        stats["d_loss"] = sum(stats[f"d_loss_{i}"] for i in range(len(state.d_phases)))
    if step >= tc.d_warmup_iters:
        stats.update(_g_phase(cfg, state, out, text, matcher, rt))
    return stats


def _g_phase(
    cfg: ExperimentConfig,
    state: TrainState,
    out: Any,
    text: torch.Tensor | None,
    matcher: nn.Module | None,
    rt: _Runtime,
) -> dict[str, float]:
    """The G update, with the discriminators frozen (``requires_grad_(False)``) so that it
    computes no D parameter gradients, then the EMA."""
    for ph in state.d_phases:
        ph.module.requires_grad_(False)
    try:
        stats = g_step(
            state.generator,
            state.discriminators,
            state.g_phase.opt,
            out,
            text,
            kl_weight=cfg.loss.kl_weight,
            uncond_weight=cfg.loss.uncond_weight,
            color_weight=cfg.loss.effective_color_weight(cfg.model.conditional),
            lowres_weight=cfg.loss.lowres_weight,
            autocast=rt.autocast,
            augment=rt.augment,
            matcher=matcher,
            match_weight=cfg.loss.match_weight,
            scaler=state.g_phase.scaler,
        )
    finally:
        for ph in state.d_phases:
            ph.module.requires_grad_(True)
    update_ema(state.g_ema, state.generator, cfg.train.ema_decay)
    return stats


def _tick(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: TrainData,
    state: TrainState,
    rt: _Runtime,
    grid: SampleGrid,
    monitor: MetricMonitor | None,
    log: StatsLog,
    tick_stats: dict[str, list[float]],
    elapsed: float,
    done: bool,
) -> None:
    """Maintenance: the tick's stats, the metric (and model-best), the grid, and on snapshot
    ticks the checkpoint and the export."""
    tc, oc = cfg.train, cfg.optim
    tick = state.step // tc.tick_iters
    epoch = (state.step - 1) // math.ceil(len(data.ds) / tc.batch_size)
    means = {k: float(np.mean(v)) for k, v in tick_stats.items()}
    record = {
        "step": state.step,
        "epoch": epoch,
        "lr_scale": oc.lr_decay_factor ** (epoch // max(oc.lr_decay_epochs, 1)),
        "sec_per_iter": elapsed / max(len(tick_stats.get("d_loss", [1])), 1),
        "train_seconds": round(state.train_seconds, 2),
        **means,
    }
    if monitor is not None and monitor.active and (tick % tc.metric_ticks == 0 or done):
        with torch.random.fork_rng(devices=[]):  # resume stays bit-exact
            metrics = monitor(state.g_ema, state.step)
        record.update({f"metric/{k}": v for k, v in metrics.items()})
        if metrics["is_best"]:
            export_generator(
                run_dir / BEST_EXPORT, state.g_ema.state_dict(), cfg, text_encoder=data.text_encoder
            )
    log.write(record, means)
    logger.info(
        "step %d  %s", state.step, "  ".join(f"{k}={v:.4f}" for k, v in sorted(means.items()))
    )
    grid.save(state.g_ema, state.step, rt.autocast)
    if tick % tc.snapshot_ticks == 0 or done:
        state.metric_best = None if monitor is None else monitor.best_state()
        save_state(run_dir / LATEST, cfg, state)
        export_generator(
            run_dir / EXPORT, state.g_ema.state_dict(), cfg, text_encoder=data.text_encoder
        )
