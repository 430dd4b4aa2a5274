"""``train(cfg, run_dir)``: the StackGAN training loop, in numbered sections.

Progress is counted in iterations; logging, the sample grid and checkpoints run on fixed ticks.
The learning rate is halved every ``optim.lr_decay_epochs`` epochs, as the paper does.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from stackgan.augment import AdaptiveAugment, make_augment
from stackgan.checkpoint import export_generator
from stackgan.config import ExperimentConfig
from stackgan.train.ema import standing_stats
from stackgan.train.iteration import Runtime, iteration, iters_per_epoch
from stackgan.train.monitor import MetricMonitor
from stackgan.train.rundir import (
    BEST_EXPORT,
    DISTRIBUTED,
    EXPORT,
    LATEST,
    claim_run_dir,
    setup_logging,
)
from stackgan.train.setup import TrainData, build_data, build_networks, image_matcher
from stackgan.train.state import (
    TrainState,
    build_state,
    compile_phases,
    distribute,
    init_networks,
    restore_state,
    save_state,
)
from stackgan.train.ticks import SampleGrid, StatsLog, TickStats, write_config
from stackgan.utils.cache import remove_stale_temporaries
from stackgan.utils.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    mean_across,
    shutdown,
)
from stackgan.utils.runtime import amp_dtype, autocast_factory, resolve_device, seed_everything

logger = logging.getLogger(__name__)


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
    info = init_distributed(resolve_device(cfg.train.device).type)
    if not info.is_main:  # rank 0 alone writes the run folder, its log and its checkpoints
        try:
            return _train(cfg, run_dir, resume, info)
        finally:
            shutdown()
    run_dir.mkdir(parents=True, exist_ok=True)
    claim_run_dir(run_dir, resume, overwrite)
    for tmp in remove_stale_temporaries(run_dir):
        logger.info("removed %s, left by a run killed mid-write", tmp.name)
    log_handler = setup_logging(run_dir)
    try:
        return _train(cfg, run_dir, resume, info)
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
        shutdown()


def _train(cfg: ExperimentConfig, run_dir: Path, resume: str | Path | None, info: DistInfo) -> Path:
    tc = cfg.train

    # 1. Runtime: device, seeds, precision (every rank the same seeds: the same global batch) ---
    device = resolve_device(tc.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    seed_everything(tc.seed)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    augment = make_augment(cfg.loss.augment)
    rt = Runtime(device, autocast_factory(device, tc.amp), fmt, augment, info)
    if cfg.loss.ada_target > 0:
        lc = cfg.loss
        rt.ada = AdaptiveAugment(lc.augment, lc.ada_target, lc.ada_interval, lc.ada_kimg)
        rt.ada.reduce = lambda r: mean_across({"r": r}, info)["r"]
        rt.augment = rt.ada
    dtype = amp_dtype(device, tc.amp)  # auto: what this processor was found to do (cached)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    logger.info("training stage %d on %s (amp=%s: %s)", cfg.model.stage, device, tc.amp, precision)

    # 2. Data: images, caption embeddings, colour-swapped negatives (rank 0 builds the caches) -
    if not info.is_main:
        barrier(info)
    data = build_data(cfg, device)
    if info.is_main:
        barrier(info)

    # 3. Networks and phases: one D phase per discriminator, then G, each with its optimiser -----
    generator, discriminators, g_ema = build_networks(cfg, device, fmt)
    state = build_state(cfg, generator, g_ema, discriminators, device)

    # 4. Resume, or start from another run's weights ---------------------------------------------
    if resume is not None:
        restore_state(Path(resume), cfg, state)
    elif tc.init_from:
        init_networks(tc.init_from, cfg, state)
    if info.enabled:
        distribute(state, device, cfg.train.sync_batchnorm)
    if cfg.train.compile != "off":
        compile_phases(state, cfg.train.compile)
    if not info.is_main:  # rank 0 fits and saves the image matcher; the others read it
        barrier(info)
    if rt.ada is not None:  # a resumed run continues with its augmentation probability
        rt.ada.p = state.ada_p
    matcher = image_matcher(cfg, run_dir, data, device, augment)  # (fitted fully augmented)
    if info.is_main:
        barrier(info)
        write_config(run_dir, cfg, state.step)
        _write_distributed(cfg, run_dir)

    # 5. Loop, with maintenance on ticks ---------------------------------------------------------
    _fit(cfg, run_dir, data, state, matcher, rt, resumed=resume is not None)
    return run_dir / EXPORT


def _write_distributed(cfg: ExperimentConfig, run_dir: Path) -> None:
    """``distributed.json``: how many processes train this run now, the batch of each and the
    global batch (a run resumed with another number rewrites it)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    summary = {
        "world_size": world,
        "batch_per_rank": cfg.train.batch_size,
        "global_batch": cfg.train.batch_size * world,
        "backend": str(dist.get_backend()) if dist.is_initialized() else None,
        "sync_batchnorm": cfg.train.sync_batchnorm and world > 1,
    }
    (run_dir / DISTRIBUTED).write_text(json.dumps(summary, indent=2) + "\n")
    if world > 1:
        logger.info("distributed: %s", summary)


def _fit(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: Runtime,
    resumed: bool,
) -> None:
    """Iterate to ``train.total_iters`` (or the time budget), with a tick every
    ``train.tick_iters``: stats, the sample grid, the metric, checkpoints and exports."""
    tc, main = cfg.train, rt.dist.is_main
    if not main:  # the other ranks train; rank 0 alone keeps the log, grids and checkpoints
        _fit_quietly(cfg, data, state, matcher, rt)
        return
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
    ticks = _TickContext(cfg, run_dir, data, state, rt, grid, monitor, log)
    tick_stats = TickStats()
    tick_start = time.time()
    try:
        while state.step < tc.total_iters:
            _step(cfg, data, state, matcher, rt, tick_stats)
            if pbar is not None:
                pbar.update(1)
            out_of_time = _out_of_time(cfg, state)
            done = state.step >= tc.total_iters or out_of_time
            if _tick_due(cfg, state, out_of_time):
                n = len(tick_stats)
                means = tick_stats.finish(rt.dist, run_dir)  # waits for the device's queue
                elapsed = time.time() - tick_start
                if pbar is not None:
                    pbar.set_postfix(d=f"{means['d_loss']:.3f}", g=f"{means.get('g_loss', 0):.3f}")
                _tick(ticks, means, elapsed / n, done)
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


def _tick_due(cfg: ExperimentConfig, state: TrainState, out_of_time: bool) -> bool:
    """Whether this iteration ends a tick: every tick_iters, at total_iters and when the time
    budget is spent. Every rank decides the same (the per-tick all-reduce depends on it)."""
    tc = cfg.train
    return state.step % tc.tick_iters == 0 or state.step >= tc.total_iters or out_of_time


def _out_of_time(cfg: ExperimentConfig, state: TrainState) -> bool:
    """``train.time_budget_min`` spent (0: no budget); every rank sees the same time."""
    budget_s = cfg.train.time_budget_min * 60
    return budget_s > 0 and state.train_seconds >= budget_s


def _step(
    cfg: ExperimentConfig,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: Runtime,
    tick_stats: TickStats,
) -> None:
    """One iteration and its bookkeeping: the step count, the training time (the mean over
    the ranks, so every rank takes the same decisions; one small all-reduce) and the losses,
    kept on the device in ``tick_stats`` (read, and checked for non-finite values, per tick)."""
    iter_start = time.time()
    stats = iteration(cfg, data, state, matcher, rt)
    seconds = mean_across({"s": time.time() - iter_start}, rt.dist)["s"]
    state.step += 1
    state.train_seconds += seconds
    tick_stats.add(state.step, stats)


def _fit_quietly(
    cfg: ExperimentConfig,
    data: TrainData,
    state: TrainState,
    matcher: nn.Module | None,
    rt: Runtime,
) -> None:
    """The loop of ranks other than 0: the same iterations, stopping rule and per-tick
    reduction of the losses, no output."""
    tick_stats = TickStats()
    while state.step < cfg.train.total_iters:
        _step(cfg, data, state, matcher, rt, tick_stats)
        out_of_time = _out_of_time(cfg, state)
        if _tick_due(cfg, state, out_of_time):  # rank 0's rule: the same all-reduces
            tick_stats.finish(rt.dist, Path("."))
        if out_of_time:
            break


@dataclass
class _TickContext:
    """What every tick's maintenance works with: the run, and the outputs it writes (the
    sample grid, the training metric and model-best, the stats log)."""

    cfg: ExperimentConfig
    run_dir: Path
    data: TrainData
    state: TrainState
    rt: Runtime
    grid: SampleGrid
    monitor: MetricMonitor | None
    log: StatsLog


def _tick(ctx: _TickContext, means: dict[str, float], sec_per_iter: float, done: bool) -> None:
    """Maintenance: the tick's stats, the metric (and model-best), the grid, and on snapshot
    ticks the checkpoint and the export."""
    cfg, run_dir, data, state, rt = ctx.cfg, ctx.run_dir, ctx.data, ctx.state, ctx.rt
    monitor = ctx.monitor
    tc, oc = cfg.train, cfg.optim
    tick = state.step // tc.tick_iters
    epoch = (state.step - 1) // iters_per_epoch(cfg, data, rt)
    record = {
        "step": state.step,
        "epoch": epoch,
        "lr_scale": oc.lr_decay_factor ** (epoch // max(oc.lr_decay_epochs, 1)),
        "sec_per_iter": sec_per_iter,
        "train_seconds": round(state.train_seconds, 2),
        **means,
    }
    if rt.ada is not None:
        record.update(ada_p=rt.ada.p, ada_rt=rt.ada.r_t)
        state.ada_p = rt.ada.p
    if tc.standing_stats:  # (update_ema puts G's statistics back at the next iteration)
        standing_stats(
            state.g_ema, data.emb, cfg.model.z_dim, tc.standing_stats, tc.batch_size, tc.seed
        )
    if monitor is not None and monitor.active and (tick % tc.metric_ticks == 0 or done):
        with torch.random.fork_rng(devices=[]):  # resume stays bit-exact
            metrics = monitor(state.g_ema, state.step)
        record.update({f"metric/{k}": v for k, v in metrics.items()})
        if metrics["is_best"]:
            export_generator(
                run_dir / BEST_EXPORT, state.g_ema.state_dict(), cfg, text_encoder=data.text_encoder
            )
    ctx.log.write(record, means)
    logger.info(
        "step %d  %s", state.step, "  ".join(f"{k}={v:.4f}" for k, v in sorted(means.items()))
    )
    ctx.grid.save(state.g_ema, state.step, rt.autocast)
    if tick % tc.snapshot_ticks == 0 or done:
        state.metric_best = None if monitor is None else monitor.best_state()
        save_state(run_dir / LATEST, cfg, state)
        export_generator(
            run_dir / EXPORT, state.g_ema.state_dict(), cfg, text_encoder=data.text_encoder
        )
