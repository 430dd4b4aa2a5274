"""The state of a training run and the phases it alternates between.

A run is a list of phases in the manner of StyleGAN2-ADA's training loop: one per
discriminator (StackGAN++ has one per branch), then the generator, each with its module and its
own optimiser. :class:`TrainState` is everything a checkpoint holds; :func:`save_state` and
:func:`restore_state` write and read it, bit-exactly (RNG states included), and
:func:`init_networks` starts a new run from another run's weights (``train.init_from``).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from stackgan.checkpoint import (
    CheckpointError,
    checkpoint_config,
    load_checkpoint,
    load_export,
    save_checkpoint,
    stage1_weights,
)
from stackgan.config import ConfigError, ExperimentConfig
from stackgan.models.discriminator import BaseDiscriminator
from stackgan.train.rundir import PREVIOUS
from stackgan.utils.distributed import sync_batchnorm
from stackgan.utils.runtime import grad_scaler, rng_state, set_rng_state

logger = logging.getLogger(__name__)


@dataclass
class Phase:
    """One update of the alternation: ``module`` trained by ``opt`` every iteration.
    ``name`` is ``D0``, ``D1``, ... or ``G``."""

    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None = None  # fp16 only: its own loss scale per optimiser
    wrapped: nn.Module | None = None  # under torchrun: the DistributedDataParallel wrapper
    compiled: nn.Module | None = None  # train.compile: torch.compile of the above

    @property
    def trained(self) -> nn.Module:
        """What this phase calls: the compiled module when ``train.compile`` is on, else the
        DDP wrapper (which averages the gradients over the ranks) when there is one, else
        the module."""
        return self.compiled if self.compiled is not None else self.eager

    @property
    def eager(self) -> nn.Module:
        """The DDP wrapper or the module, never compiled: for what torch.compile cannot run
        (the R1 penalty's gradient of a gradient)."""
        return self.wrapped if self.wrapped is not None else self.module


@dataclass
class TrainState:
    """The networks, their phases and the counters of a run.

    data_gen: the stream of crops, flips, captions and mismatched captions (the networks' noise
        comes from torch's global RNG, saved with the checkpoint too).
    """

    generator: nn.Module
    g_ema: nn.Module
    d_phases: list[Phase]
    g_phase: Phase
    data_gen: torch.Generator
    step: int = 0
    train_seconds: float = 0.0  # in training iterations (no tick maintenance), across resumes
    metric_best: Any = None  # the best training-metric score so far, carried across resumes
    ada_p: float = 0.0  # ADA's augmentation probability, carried across resumes

    @property
    def discriminators(self) -> list[BaseDiscriminator]:
        return [p.module for p in self.d_phases]  # type: ignore[misc]

    def set_lr(self, g_lr: float, d_lr: float) -> None:
        for group in self.g_phase.opt.param_groups:
            group["lr"] = g_lr
        for ph in self.d_phases:
            for group in ph.opt.param_groups:
                group["lr"] = d_lr


def build_state(
    cfg: ExperimentConfig,
    generator: nn.Module,
    g_ema: nn.Module,
    discriminators: list[BaseDiscriminator],
    device: torch.device | None = None,
) -> TrainState:
    """Adam for G (its trainable parameters: a v1 Stage-II's Stage-I stays frozen) and one per
    discriminator, as the reference code, each with a loss scaler in fp16; the data stream
    seeded by ``train.seed``."""
    oc = cfg.optim
    dev = device if device is not None else torch.device("cpu")
    g_params = [p for p in generator.parameters() if p.requires_grad]
    # on CUDA, Adam's fused kernel: one launch per step instead of several per tensor (a step is
    # launch-bound there); the CPU keeps the default implementation (and its exact numbers)
    fused = {"fused": True} if dev.type == "cuda" else {}
    g_opt = torch.optim.Adam(g_params, lr=oc.g_lr, betas=oc.betas, **fused)
    g_phase = Phase("G", generator, g_opt, scaler=grad_scaler(dev, cfg.train.amp))
    d_phases = [
        Phase(
            f"D{i}",
            d,
            torch.optim.Adam(d.parameters(), lr=oc.d_lr, betas=oc.betas, **fused),
            scaler=grad_scaler(dev, cfg.train.amp),
        )
        for i, d in enumerate(discriminators)
    ]
    data_gen = torch.Generator().manual_seed(cfg.train.seed)
    return TrainState(generator, g_ema, d_phases, g_phase, data_gen)


def save_state(path: Path, cfg: ExperimentConfig, state: TrainState) -> None:
    """The full training state as ``path`` (the previous one kept as ``checkpoint-previous.pt``)."""
    save_checkpoint(
        path,
        cfg,
        previous=path.with_name(PREVIOUS),
        step=state.step,
        generator=state.generator.state_dict(),
        generator_ema=state.g_ema.state_dict(),
        discriminators=[d.state_dict() for d in state.discriminators],
        optimizers={
            "generator": state.g_phase.opt.state_dict(),
            "discriminators": [p.opt.state_dict() for p in state.d_phases],
        },
        rng={**rng_state(), "data": state.data_gen.get_state()},
        scaler={
            "generator": _scaler_state(state.g_phase),
            "discriminators": [_scaler_state(p) for p in state.d_phases],
        },
        metric_best=state.metric_best,
        train_seconds=state.train_seconds,
        ada_p=state.ada_p,
    )


def restore_state(path: Path, cfg: ExperimentConfig, state: TrainState) -> Path:
    """Continue ``state`` from the checkpoint ``path`` (or, when it is missing or fails
    verification, ``checkpoint-previous.pt`` beside it, with a warning); returns the file used."""
    ckpt, used = _load_resume(path)
    try:
        _restore(ckpt, used, cfg, state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        # every field was read from a verified file; one of the wrong kind or shape is named
        raise CheckpointError(
            f"{used}: cannot resume from it: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    logger.info("resumed from %s at iteration %d", used, state.step)
    return used


def _restore(ckpt: dict[str, Any], used: Path, cfg: ExperimentConfig, state: TrainState) -> None:
    old = checkpoint_config(ckpt, used)
    if old.model != cfg.model or old.text != cfg.text:
        raise CheckpointError(
            f"{used} was trained with a different model/text config; resume needs the same"
        )
    state.generator.load_state_dict(ckpt["generator"])
    state.g_ema.load_state_dict(ckpt["generator_ema"])
    for d, d_state in zip(state.discriminators, ckpt["discriminators"], strict=True):
        try:
            d.load_state_dict(d_state)
        except RuntimeError:
            if old.train.crop != cfg.train.crop:  # it sizes the last D: name it, not the shapes
                raise CheckpointError(
                    f"{used} was trained with train.crop {old.train.crop} and this config has "
                    f"{cfg.train.crop}, which builds a different discriminator; resume with "
                    f"--set train.crop={old.train.crop}"
                ) from None
            raise
    state.g_phase.opt.load_state_dict(ckpt["optimizers"]["generator"])
    for ph, o_state in zip(state.d_phases, ckpt["optimizers"]["discriminators"], strict=True):
        ph.opt.load_state_dict(o_state)
    scalers = ckpt.get("scaler") or {}
    for ph, sc in zip(
        [state.g_phase, *state.d_phases],
        [scalers.get("generator"), *scalers.get("discriminators", [None] * len(state.d_phases))],
        strict=True,
    ):
        if ph.scaler is not None and sc:
            ph.scaler.load_state_dict(sc)
    set_rng_state(ckpt["rng"])
    if ckpt["rng"].get("data") is not None:
        state.data_gen.set_state(ckpt["rng"]["data"])
    state.metric_best = ckpt.get("metric_best")
    state.train_seconds = float(ckpt.get("train_seconds", 0.0))
    # checkpoints written before issue 29 keep ADA's probability in an "extra" dict
    state.ada_p = float(ckpt.get("ada_p", (ckpt.get("extra") or {}).get("ada_p", 0.0)))
    state.step = int(ckpt["step"])


def _scaler_state(phase: Phase) -> dict[str, Any]:
    return phase.scaler.state_dict() if phase.scaler is not None else {}


def _load_resume(path: Path) -> tuple[dict[str, Any], Path]:
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


def init_networks(path: str | Path, cfg: ExperimentConfig, state: TrainState) -> None:
    """``train.init_from``: start from a checkpoint's weights (see the config key). The generator
    must match exactly; a discriminator may have parameters the checkpoint lacks, which keep
    their initialisation (and are logged), but none the checkpoint has with another shape.
    An export (.safetensors) has no discriminator: G and its EMA start from its generator (the
    Stage-I part of a v1 Stage-II export for a Stage-I config), D from its initialisation.
    A v1 Stage-II config takes only the Stage-II weights: its Stage-I is model.stage1_checkpoint.
    """
    path = Path(path)
    ckpt, old = _init_source(path, cfg)
    if old.text != cfg.text:
        raise ConfigError(f"train.init_from: {path} was trained with another text config")
    v1_stage2 = cfg.model.version == "v1" and cfg.model.stage == 2
    try:
        for net, key in ((state.generator, "generator"), (state.g_ema, "generator_ema")):
            weights = ckpt[key]
            if v1_stage2:  # Stage-I stays the one model.stage1_checkpoint names
                weights = {k: v for k, v in weights.items() if not k.startswith("stage1.")}
            missing, unexpected = net.load_state_dict(weights, strict=not v1_stage2)
            if unexpected or any(not k.startswith("stage1.") for k in missing):
                raise RuntimeError(f"missing {missing}, unexpected {unexpected}")
    except RuntimeError as exc:
        raise ConfigError(f"train.init_from: {path} has another generator: {exc}") from exc
    if "discriminators" not in ckpt:
        logger.info("initialised the generator from the export %s; new discriminators", path)
        return
    _init_discriminators(path, ckpt["discriminators"], state.discriminators)
    logger.info("initialised networks from %s (iteration %d there)", path, int(ckpt["step"]))


def _init_source(path: Path, cfg: ExperimentConfig) -> tuple[dict[str, Any], ExperimentConfig]:
    if path.suffix != ".safetensors":
        ckpt = load_checkpoint(path)
        return ckpt, checkpoint_config(ckpt, path)
    g_state, old = load_export(path)
    if cfg.model.version == "v1" and cfg.model.stage == 1 and old.model.stage == 2:
        g_state = stage1_weights(g_state, old)
    return {"generator": g_state, "generator_ema": g_state}, old


def _init_discriminators(
    path: Path, states: list[dict[str, torch.Tensor]], discriminators: list[BaseDiscriminator]
) -> None:
    if len(states) != len(discriminators):
        raise ConfigError(f"train.init_from: {path} has another number of discriminators")
    for d, d_state in zip(discriminators, states, strict=True):
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


def distribute(state: TrainState, device: torch.device, sync: bool) -> None:
    """Wrap G and each D in DistributedDataParallel. Without ``sync``
    (``train.sync_batchnorm``), each rank normalises its own slice and DDP broadcasts rank 0's
    batch-norm buffers before each forward (``broadcast_buffers``), so every replica, and the
    checkpoint rank 0 writes, holds the same running statistics; with it, the statistics are
    the global batch's on every rank and need no broadcast."""
    for ph in (*state.d_phases, state.g_phase):
        module = sync_batchnorm(ph.module, device.type) if sync else ph.module
        ids = [device.index] if device.type == "cuda" else None
        ph.wrapped = DistributedDataParallel(module, device_ids=ids, **_buffer_sync(not sync))


def compile_phases(state: TrainState, mode: str) -> None:
    """``torch.compile`` what each phase calls (the DDP wrapper too, whose graph breaks at
    the gradient buckets): G's forward and each D's forward in its D step. The modules
    themselves stay as they are, so checkpoints and exports keep their parameter names; the
    G step scores the fakes with the plain (frozen) discriminators, and the R1 penalty (a
    gradient of a gradient, which compiled code does not support) runs eagerly. Random ops
    inside the compiled code (the CA noise) draw from torch's own generator, as in eager
    mode, so a compiled run consumes the same random stream and resumes as exactly."""
    from torch._inductor import list_mode_options

    # the mode's own options plus that one, for these modules only (no process-wide setting)
    options = {**list_mode_options(mode), "fallback_random": True}
    for ph in (*state.d_phases, state.g_phase):
        ph.compiled = torch.compile(ph.eager, options=options)  # type: ignore[assignment]


def _buffer_sync(on: bool) -> dict[str, Any]:
    """DDP's buffer-broadcast switch under the name this torch knows (``broadcast_buffers``
    became ``forward_sync_buffers``; the buffers start equal on every rank either way)."""
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": on}
