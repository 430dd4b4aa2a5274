"""``train(cfg, run_dir)``: the StackGAN training loop, in numbered sections.

Progress is counted in iterations; logging, the sample grid and checkpoints run on fixed ticks.
The learning rate is halved every ``optim.lr_decay_epochs`` epochs, as the paper does.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stackgan.augment import make_augment
from stackgan.checkpoint import (
    CheckpointError,
    checkpoint_config,
    export_generator,
    load_checkpoint,
    load_export,
    load_generator_weights,
    save_checkpoint,
)
from stackgan.config import ConfigError, ExperimentConfig
from stackgan.data.cub import TextImageDataset
from stackgan.data.folder import ImageFolderDataset
from stackgan.models.discriminator import Discriminator
from stackgan.models.registry import build_discriminators, build_generator, image_sizes
from stackgan.text.base import TextEncoder, is_encoder_file
from stackgan.text.encoders import dataset_embeddings
from stackgan.text.negatives import color_swapped_captions
from stackgan.text.trainable import TrainedTextEncoder
from stackgan.train.ema import update_ema
from stackgan.train.matching import fit_image_matcher, load_image_matcher, save_image_matcher
from stackgan.train.monitor import MetricMonitor
from stackgan.train.steps import d_step, g_step
from stackgan.utils.cache import atomic_write, remove_stale_temporaries
from stackgan.utils.images import make_grid, resize_to, save_png, to_uint8
from stackgan.utils.runtime import (
    autocast_factory,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

logger = logging.getLogger(__name__)

LATEST = "checkpoint-latest.pt"
PREVIOUS = "checkpoint-previous.pt"  # the checkpoint before LATEST: never one copy only
STATS = "stats.jsonl"
# What a run writes: an existing folder holding any of these is a run, not overwritten silently
RUN_OUTPUTS = (LATEST, PREVIOUS, "model.safetensors", "model-best.safetensors", STATS)
GRID_CAPTIONS_PER_ROW = {1: 8, 2: 2}  # by number of stages shown side by side
EXPORT = "model.safetensors"
BEST_EXPORT = "model-best.safetensors"  # the best g_ema by the training metric so far
MATCHER_FILE = "image-matcher.safetensors"  # the frozen encoder of loss.match_weight


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


def _grid_captions(ds: TextImageDataset | ImageFolderDataset, n: int) -> torch.Tensor:
    """Caption indices for the fixed sample grid: the first caption of n evenly spaced images."""
    idx = torch.linspace(0, len(ds) - 1, min(n, len(ds))).long()
    if isinstance(ds, ImageFolderDataset):
        return torch.zeros(n, dtype=torch.long)  # no text: the grid is n noise vectors
    first: torch.Tensor = ds.caption_offsets[idx]
    return first


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


def _train(cfg: ExperimentConfig, run_dir: Path, resume: str | Path | None) -> Path:
    tc = cfg.train

    # 1. Runtime --------------------------------------------------------------------------------
    device = resolve_device(tc.device)
    seed_everything(tc.seed)
    autocast = autocast_factory(device, tc.amp)
    memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
    logger.info("training stage %d on %s (amp=%s)", cfg.model.stage, device, tc.amp)

    # 2. Data -------------------------------------------------------------------------------------
    sizes = image_sizes(cfg)  # one real-image resolution per discriminator
    img_size = sizes[-1]
    ds: TextImageDataset | ImageFolderDataset
    emb: torch.Tensor | None = None
    swap_emb: torch.Tensor | None = None  # colour-swapped negatives (loss.swap_negatives)
    swap_ok = torch.zeros(0, dtype=torch.bool)
    # a trained text encoder file is read once: the caption embeddings, the metric and every
    # export use this copy
    text_encoder = None
    if not cfg.model.conditional:  # StackGAN++ unconditional mode: any folder of images
        ds = ImageFolderDataset(
            cfg.data.root,
            img_size,
            random_flip=cfg.data.random_flip,
            max_images=cfg.data.max_images,
            cache_dir=cfg.data.cache_dir or None,
            progress=tc.progress,
        )
        logger.info("%d images, no text (unconditional)", len(ds))
    else:
        ds = TextImageDataset(
            cfg.data.root,
            cfg.data.split,
            img_size,
            bbox_crop=cfg.data.bbox_crop,
            random_crop=cfg.data.random_crop,
            random_flip=cfg.data.random_flip,
            max_images=cfg.data.max_images,
            cache_dir=cfg.data.cache_dir or None,
            progress=tc.progress,
            layout=cfg.data.layout,
        )
        if is_encoder_file(cfg.text.encoder):
            text_encoder = TrainedTextEncoder(cfg.text.encoder, device=device)
        emb = dataset_embeddings(
            ds.captions,
            cfg.text.encoder,
            ds.cache_dir,
            embeddings_file=cfg.text.embeddings_file,
            caption_counts=ds.caption_counts.tolist(),
            device=device,
            progress=tc.progress,
            encoder=text_encoder,
        )
        if emb.shape[1] != cfg.text.dim:
            raise ConfigError(
                f"text.dim is {cfg.text.dim} but the {cfg.text.encoder} encoder gives "
                f"{emb.shape[1]}-d embeddings"
            )
        emb = emb.to(device, torch.float32)
        logger.info("%d images, %d captions, %d-d text", len(ds), ds.num_captions, emb.shape[1])
        if cfg.loss.swap_negatives > 0:
            swap_emb, swap_ok = _swapped_embeddings(cfg, ds, device, text_encoder)

    # 3. Networks ---------------------------------------------------------------------------------
    generator = build_generator(cfg)
    if cfg.model.version == "v1" and cfg.model.stage == 2:
        if not cfg.model.stage1_checkpoint:
            raise ConfigError("model.stage1_checkpoint is required for stage 2")
        s1_state, s1_cfg = load_generator_weights(cfg.model.stage1_checkpoint)
        if s1_cfg.text.dim != cfg.text.dim or s1_cfg.text.encoder != cfg.text.encoder:
            raise ConfigError(
                f"Stage-I model uses {s1_cfg.text.encoder} ({s1_cfg.text.dim}-d text) but this "
                f"config uses {cfg.text.encoder} ({cfg.text.dim}-d)"
            )
        s1_state = {k.removeprefix("stage1."): v for k, v in s1_state.items()}
        try:
            generator.stage1.load_state_dict(s1_state)  # type: ignore[union-attr]
        except RuntimeError as exc:
            raise ConfigError(
                f"{cfg.model.stage1_checkpoint} does not match model.ngf/z_dim/cond_dim: {exc}"
            ) from exc
    discriminators = build_discriminators(cfg)
    # (torch's stubs lack Module.to(memory_format=...), which exists at run time)
    generator.to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
    for d in discriminators:
        d.to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    n_g = sum(p.numel() for p in generator.parameters() if p.requires_grad)
    n_d = sum(p.numel() for d in discriminators for p in d.parameters())
    logger.info("generator: %.2fM trainable parameters; discriminator: %.2fM", n_g / 1e6, n_d / 1e6)

    # 4. Optimisers -------------------------------------------------------------------------------
    oc = cfg.optim
    g_params = [p for p in generator.parameters() if p.requires_grad]  # Stage-I stays frozen
    g_opt = torch.optim.Adam(g_params, lr=oc.g_lr, betas=oc.betas)
    # one phase per discriminator, each with its own optimiser (StackGAN++ has one per branch)
    d_opts = [torch.optim.Adam(d.parameters(), lr=oc.d_lr, betas=oc.betas) for d in discriminators]
    color_weight = cfg.loss.effective_color_weight(cfg.model.conditional)
    r1_gamma = cfg.loss.r1_gamma * cfg.loss.r1_interval  # lazy: rarer, so proportionally stronger
    augment = make_augment(cfg.loss.augment)

    # 5. Resume -----------------------------------------------------------------------------------
    step = 0
    data_rng_state = None
    metric_best = None  # the best training-metric score so far, carried across resumes
    train_seconds = 0.0  # time in training iterations (no tick maintenance), across resumes
    if resume is not None:
        ckpt, resume = _load_resume(Path(resume))
        old = checkpoint_config(ckpt, resume)
        if old.model != cfg.model or old.text != cfg.text:
            raise CheckpointError(
                f"{resume} was trained with a different model/text config; resume needs the same"
            )
        generator.load_state_dict(ckpt["generator"])
        g_ema.load_state_dict(ckpt["generator_ema"])
        for d, d_state in zip(discriminators, ckpt["discriminators"], strict=True):
            d.load_state_dict(d_state)
        g_opt.load_state_dict(ckpt["optimizers"]["generator"])
        for opt, o_state in zip(d_opts, ckpt["optimizers"]["discriminators"], strict=True):
            opt.load_state_dict(o_state)
        set_rng_state(ckpt["rng"])
        data_rng_state = ckpt["rng"].get("data")
        metric_best = ckpt.get("metric_best")
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        step = int(ckpt["step"])
        logger.info("resumed from %s at iteration %d", resume, step)
    elif tc.init_from:
        _init_networks(tc.init_from, cfg, generator, g_ema, discriminators)

    matcher = None
    if cfg.loss.match_weight > 0 and emb is not None and isinstance(ds, TextImageDataset):
        matcher = _image_matcher(cfg, run_dir, ds, emb, sizes, device, augment)

    _write_config(run_dir, cfg, step)

    # 6. Loop -------------------------------------------------------------------------------------
    iters_per_epoch = math.ceil(len(ds) / tc.batch_size)
    gen = torch.Generator().manual_seed(tc.seed)  # crops, flips, captions, mismatches
    if data_rng_state is not None:
        gen.set_state(data_rng_state)
    grid_caps = _grid_captions(ds, tc.num_grid_captions)
    grid_gen = torch.Generator().manual_seed(tc.seed + 1)
    grid_z = torch.randn(len(grid_caps), cfg.model.z_dim, generator=grid_gen).to(device)
    grid_eps = torch.randn(len(grid_caps), cfg.model.cond_dim, generator=grid_gen).to(device)
    grid_text = None
    (run_dir / "samples").mkdir(exist_ok=True)
    if emb is not None and isinstance(ds, TextImageDataset):
        grid_text = emb[grid_caps.to(device)]
        (run_dir / "captions-grid.txt").write_text(
            "\n".join(ds.captions[int(i)] for i in grid_caps) + "\n"
        )
    monitor = MetricMonitor(cfg, device, text_encoder) if tc.metric_ticks else None
    if monitor is not None and metric_best is not None:
        # a resume must not replace model-best.safetensors with a worse model
        monitor.restore_best(metric_best)
    # ticks after the checkpoint we resumed from ran before an interruption: drop their records
    _truncate_stats(run_dir / STATS, step)
    purge = step if resume is not None else None
    writer = _tensorboard(run_dir, purge_step=purge) if tc.tensorboard else None
    stats_f = open(run_dir / STATS, "a")  # noqa: SIM115 (closed in the finally below)

    pbar = None
    if tc.progress:
        from tqdm import tqdm

        pbar = tqdm(
            total=tc.total_iters,
            initial=step,
            desc=cfg.name,
            unit="it",
            dynamic_ncols=True,
        )
    tick_stats: dict[str, list[float]] = {}
    tick_start = time.time()
    perm = torch.empty(0, dtype=torch.long)
    perm_epoch = -1
    try:
        budget_s = tc.time_budget_min * 60
        while step < tc.total_iters:
            iter_start = time.time()
            epoch, pos = divmod(step, iters_per_epoch)
            if epoch != perm_epoch:  # a fresh shuffle each epoch, reproducible from the step
                perm = torch.randperm(
                    len(ds), generator=torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch)
                )
                perm_epoch = epoch
            idx = perm[pos * tc.batch_size : (pos + 1) * tc.batch_size]
            if len(idx) < 2:  # a last partial batch of one cannot form a mismatched pair
                idx = perm[: tc.batch_size]
            lr_scale = oc.lr_decay_factor ** (epoch // max(oc.lr_decay_epochs, 1))
            for group in g_opt.param_groups:
                group["lr"] = oc.g_lr * lr_scale
            for opt in d_opts:
                for group in opt.param_groups:
                    group["lr"] = oc.d_lr * lr_scale

            batch = ds.sample(idx, sizes, gen)
            reals = [
                im.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                for im in batch.images
            ]
            text = wrong = None
            if emb is not None:
                assert batch.caption_idx is not None and batch.wrong_caption_idx is not None
                text = emb[batch.caption_idx.to(device)]
                # Mismatched captions come from images of another class (see TextImageDataset),
                # optionally the most text-similar of several (loss.wrong_candidates).
                wrong_idx = batch.wrong_caption_idx
                if cfg.loss.wrong_candidates > 1 and isinstance(ds, TextImageDataset):
                    wrong_idx = ds.hard_wrong_captions(
                        idx, batch.caption_idx, emb, cfg.loss.wrong_candidates, gen
                    )
                wrong = emb[wrong_idx.to(device)]
                if swap_emb is not None:  # some become the own caption with a colour swapped
                    swap = torch.rand(len(idx), generator=gen) < cfg.loss.swap_negatives
                    swap &= swap_ok[batch.caption_idx]
                    n_var = cfg.loss.swap_variants
                    pick = batch.caption_idx * n_var
                    if n_var > 1:  # (one variant draws nothing: the data stream stays as it was)
                        pick = pick + torch.randint(n_var, (len(idx),), generator=gen)
                    own = swap_emb[pick.to(device)]
                    wrong = torch.where(swap.to(device)[:, None], own, wrong)
            z = torch.randn(len(idx), cfg.model.z_dim, device=device)

            with autocast():
                out = generator(z, text)
            fakes = out.images[-len(discriminators) :]  # v1 Stage-II: D sees only the 256 image
            stats: dict[str, float] = {}
            for i, (d, opt, real, fake) in enumerate(zip(discriminators, d_opts, reals, fakes)):
                d_stats = d_step(
                    d,
                    opt,
                    real,
                    fake,
                    text,
                    wrong,
                    wrong_fake_weight=cfg.loss.wrong_fake_weight,
                    uncond_weight=cfg.loss.uncond_weight,
                    autocast=autocast,
                    augment=augment,
                    r1_gamma=r1_gamma if step % cfg.loss.r1_interval == 0 else 0.0,
                )
                suffix = f"_{i}" if len(discriminators) > 1 else ""
                stats.update({f"{k}{suffix}": v for k, v in d_stats.items()})
            if len(discriminators) > 1:
                stats["d_loss"] = sum(stats[f"d_loss_{i}"] for i in range(len(discriminators)))
            if step >= tc.d_warmup_iters:
                stats.update(
                    g_step(
                        generator,
                        discriminators,
                        g_opt,
                        out,
                        text,
                        kl_weight=cfg.loss.kl_weight,
                        uncond_weight=cfg.loss.uncond_weight,
                        color_weight=color_weight,
                        lowres_weight=cfg.loss.lowres_weight,
                        autocast=autocast,
                        augment=augment,
                        matcher=matcher,
                        match_weight=cfg.loss.match_weight,
                    )
                )
                update_ema(g_ema, generator, tc.ema_decay)
            step += 1
            train_seconds += time.time() - iter_start
            bad = [k for k, v in stats.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"non-finite {bad[0]} ({stats[bad[0]]}) at iteration {step}: training "
                    f"stopped; the last checkpoint and export in {run_dir} are left as they were"
                )
            for k, v in stats.items():
                tick_stats.setdefault(k, []).append(v)
            if pbar is not None:
                pbar.update(1)
                if step % 10 == 0:
                    pbar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats.get('g_loss', 0):.3f}")

            # 7. Maintenance on ticks -------------------------------------------------------------
            out_of_time = budget_s > 0 and train_seconds >= budget_s
            done = step >= tc.total_iters or out_of_time
            if step % tc.tick_iters == 0 or done:
                tick = step // tc.tick_iters
                elapsed = time.time() - tick_start
                means = {k: float(np.mean(v)) for k, v in tick_stats.items()}
                record = {
                    "step": step,
                    "epoch": epoch,
                    "lr_scale": lr_scale,
                    "sec_per_iter": elapsed / max(len(tick_stats.get("d_loss", [1])), 1),
                    "train_seconds": round(train_seconds, 2),
                    **means,
                }
                if monitor is not None and monitor.active and (tick % tc.metric_ticks == 0 or done):
                    with torch.random.fork_rng(devices=[]):  # resume stays bit-exact
                        metrics = monitor(g_ema)
                    record.update({f"metric/{k}": v for k, v in metrics.items()})
                    if metrics["is_best"]:
                        export_generator(
                            run_dir / BEST_EXPORT,
                            g_ema.state_dict(),
                            cfg,
                            text_encoder=text_encoder,
                        )
                stats_f.write(json.dumps(record) + "\n")
                stats_f.flush()
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("progress/sec_per_iter", record["sec_per_iter"], step)
                    for k, v in record.items():
                        if k.startswith("metric/"):
                            writer.add_scalar(k, v, step)
                logger.info(
                    "step %d  %s", step, "  ".join(f"{k}={v:.4f}" for k, v in sorted(means.items()))
                )
                _save_grid(
                    g_ema,
                    grid_z,
                    grid_text,
                    grid_eps,
                    run_dir / "samples" / f"grid-{step:07d}.png",
                    autocast,
                )
                if tick % tc.snapshot_ticks == 0 or done:
                    save_checkpoint(
                        run_dir / LATEST,
                        cfg,
                        previous=run_dir / PREVIOUS,
                        step=step,
                        generator=generator.state_dict(),
                        generator_ema=g_ema.state_dict(),
                        discriminators=[d.state_dict() for d in discriminators],
                        optimizers={
                            "generator": g_opt.state_dict(),
                            "discriminators": [o.state_dict() for o in d_opts],
                        },
                        rng={**rng_state(), "data": gen.get_state()},
                        metric_best=None if monitor is None else monitor.best_state(),
                        train_seconds=train_seconds,
                    )
                    export_generator(
                        run_dir / EXPORT, g_ema.state_dict(), cfg, text_encoder=text_encoder
                    )
                tick_stats = {}
                tick_start = time.time()
            if out_of_time:
                logger.info("time budget of %g min spent at iteration %d", tc.time_budget_min, step)
                break
    finally:
        if pbar is not None:
            pbar.close()
        stats_f.close()
        if writer is not None:
            writer.close()
    return run_dir / EXPORT


def _swapped_embeddings(
    cfg: ExperimentConfig,
    ds: TextImageDataset,
    device: torch.device,
    text_encoder: TextEncoder | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every caption's colour-swapped versions (``loss.swap_variants`` per
    caption, caption-major; cached like the captions' own), and which captions named a colour
    to swap."""
    k = cfg.loss.swap_variants
    swapped, ok = color_swapped_captions(ds.captions, seed=cfg.train.seed, variants=k)
    if not ok.any():
        raise ConfigError(
            "loss.swap_negatives: no caption of this dataset names a colour "
            "(stackgan.text.negatives.COLOR_FAMILIES)"
        )
    first = int(ok.nonzero()[0])
    logger.info(
        "colour-swapped negatives for %.1f%% of captions, e.g. %r -> %r",
        100 * float(ok.float().mean()),
        ds.captions[first],
        swapped[first * k],
    )
    swap_emb = dataset_embeddings(
        swapped,
        cfg.text.encoder,
        ds.cache_dir,
        device=device,
        progress=cfg.train.progress,
        encoder=text_encoder,
    )
    return swap_emb.to(device, torch.float32), ok


def _image_matcher(
    cfg: ExperimentConfig,
    run_dir: Path,
    ds: TextImageDataset,
    emb: torch.Tensor,
    sizes: list[int],
    device: torch.device,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
) -> nn.Module:
    """The frozen image encoder of ``loss.match_weight``: the run's own (a resume reads it back),
    or fitted on the training pairs and saved beside the checkpoints."""
    path = run_dir / MATCHER_FILE
    if path.exists():
        logger.info("image matcher from %s", path)
        return load_image_matcher(path, device)
    bs = cfg.train.batch_size

    def sample(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(ds), (bs,), generator=gen)
        caps = ds.random_captions(idx, gen)
        return ds.images_at(idx, sizes[-1:], gen)[0], emb[caps.to(emb.device)]

    logger.info("fitting the image matcher (%d steps)", cfg.loss.match_steps)
    matcher = fit_image_matcher(
        sample,
        emb.shape[1],
        sizes[-1],
        cfg.loss.match_steps,
        device,
        seed=cfg.train.seed,
        augment=augment,
        progress=cfg.train.progress,
    )
    save_image_matcher(path, matcher)
    return matcher


def _init_networks(
    path: str | Path,
    cfg: ExperimentConfig,
    generator: nn.Module,
    g_ema: nn.Module,
    discriminators: list[Discriminator],
) -> None:
    """``train.init_from``: start from a checkpoint's weights (see the config key). The generator
    must match exactly; a discriminator may have parameters the checkpoint lacks, which keep
    their initialisation (and are logged), but none the checkpoint has with another shape.
    An export (.safetensors) has no discriminator: G and its EMA start from its generator (the
    Stage-I part of a v1 Stage-II export for a Stage-I config), D from its initialisation.
    A v1 Stage-II config takes only the Stage-II weights: its Stage-I is model.stage1_checkpoint.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        g_state, old = load_export(path)
        ckpt: dict[str, Any] = {"generator": g_state, "generator_ema": g_state}
        if cfg.model.version == "v1" and cfg.model.stage == 1 and old.model.stage == 2:
            ckpt["generator"] = ckpt["generator_ema"] = {
                k.removeprefix("stage1."): v for k, v in g_state.items() if k.startswith("stage1.")
            }
    else:
        ckpt = load_checkpoint(path)
        old = checkpoint_config(ckpt, path)
    if old.text != cfg.text:
        raise ConfigError(f"train.init_from: {path} was trained with another text config")
    v1_stage2 = cfg.model.version == "v1" and cfg.model.stage == 2
    try:
        for net, key in ((generator, "generator"), (g_ema, "generator_ema")):
            state = ckpt[key]
            if v1_stage2:  # Stage-I stays the one model.stage1_checkpoint names
                state = {k: v for k, v in state.items() if not k.startswith("stage1.")}
            missing, unexpected = net.load_state_dict(state, strict=not v1_stage2)
            if unexpected or any(not k.startswith("stage1.") for k in missing):
                raise RuntimeError(f"missing {missing}, unexpected {unexpected}")
    except RuntimeError as exc:
        raise ConfigError(f"train.init_from: {path} has another generator: {exc}") from exc
    if "discriminators" not in ckpt:
        logger.info("initialised the generator from the export %s; new discriminators", path)
        return
    if len(ckpt["discriminators"]) != len(discriminators):
        raise ConfigError(f"train.init_from: {path} has another number of discriminators")
    for d, d_state in zip(discriminators, ckpt["discriminators"], strict=True):
        try:
            missing, unexpected = d.load_state_dict(d_state, strict=False)
        except RuntimeError as exc:  # a shape mismatch
            raise ConfigError(f"train.init_from: {path}: {exc}") from exc
        if unexpected:
            raise ConfigError(
                f"train.init_from: {path} has discriminator weights this config lacks: "
                f"{', '.join(unexpected)}"
            )
        if missing:
            logger.info("init_from: new discriminator parameters %s", ", ".join(missing))
    logger.info("initialised networks from %s (iteration %d there)", path, int(ckpt["step"]))


def _write_config(run_dir: Path, cfg: ExperimentConfig, step: int) -> None:
    """``config.yaml`` of the run; a resume with other settings keeps the config the earlier
    iterations ran with as ``config-until-<step>.yaml``, so the run's history stays readable."""
    path, text = run_dir / "config.yaml", cfg.to_yaml()
    if path.exists() and path.read_text() != text:
        path.replace(run_dir / f"config-until-{step:07d}.yaml")
        logger.info("settings changed at iteration %d; earlier ones kept beside config.yaml", step)
    path.write_text(text)


@torch.no_grad()
def _save_grid(
    g_ema: nn.Module,
    z: torch.Tensor,
    text: torch.Tensor | None,
    eps: torch.Tensor,
    path: Path,
    autocast: Any,
) -> None:
    """Fixed-caption, fixed-noise grid: stages of a caption side by side (unconditional: of a
    noise vector)."""
    with autocast():
        out = g_ema(z, text, eps if text is not None else None)
    size = out.images[-1].shape[-1]
    cols = [to_uint8(resize_to(im, size)) for im in out.images]  # each (B, S, S, 3)
    tiles = np.stack(cols, axis=1).reshape(-1, size, size, 3)  # stages of a caption adjacent
    per_row = GRID_CAPTIONS_PER_ROW[min(len(cols), 2)]
    save_png(make_grid(tiles, nrow=len(cols) * per_row), path)


def _load_resume(path: Path) -> tuple[dict[str, Any], Path]:
    """The checkpoint to resume from: ``path``, or, when it is missing or fails verification,
    ``checkpoint-previous.pt`` beside it (with a warning)."""
    try:
        return load_checkpoint(path), path
    except CheckpointError as exc:
        previous = path.with_name(PREVIOUS)
        if previous == path or not previous.is_file():
            raise
        logger.warning("%s; resuming from the previous checkpoint %s instead", exc, previous)
        try:
            return load_checkpoint(previous), previous
        except CheckpointError as exc2:
            raise CheckpointError(f"{exc}; and the fallback: {exc2}") from exc2


def _truncate_stats(path: Path, step: int) -> None:
    """Keep the records of ``stats.jsonl`` up to ``step`` (and drop a line cut by a kill)."""
    if not path.exists():
        return
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            ok = int(rec["step"]) <= step
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write(path, lambda tmp: tmp.write_text("".join(ln + "\n" for ln in keep)))
        logger.info("stats.jsonl: dropped %d records past iteration %d", dropped, step)


def _tensorboard(run_dir: Path, purge_step: int | None = None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.warning(
            "tensorboard is not installed; scalars go to stats.jsonl only "
            "(pip install 'stackgan[tensorboard]')"
        )
        return None
    # purge_step: a resume hides the events logged after its checkpoint, as stats.jsonl drops them
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)
