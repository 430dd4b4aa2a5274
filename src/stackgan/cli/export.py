"""``stackgan export``: a training checkpoint's EMA generator as an inference file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from stackgan.config import ExperimentConfig


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors file."
)
@click.option("--half", is_flag=True, help="Store weights in fp16 (half the size).")
@click.option(
    "--stage1",
    "stage1",
    default=None,
    type=click.Path(dir_okay=False),
    help="v1 Stage-II only: put this Stage-I generator (an export or checkpoint) under its "
    "Stage-II, e.g. a Stage-I fine-tuned after the Stage-II was trained.",
)
@click.option(
    "--standing-stats",
    default=0,
    show_default=True,
    help="Recompute the batch-norm statistics for the EMA weights over N batches of random z "
    "and --data's training captions (BigGAN's standing statistics); 0 = keep them.",
)
@click.option(
    "--data",
    "data_root",
    default="",
    help="Dataset folder whose training captions --standing-stats draws (conditional models).",
)
def export(
    checkpoint: str,
    out: str,
    half: bool,
    stage1: str | None,
    standing_stats: int,
    data_root: str,
) -> None:
    """Export a training checkpoint's EMA generator for sampling.

    CHECKPOINT may also be an export (``model.safetensors``, ``model-best.safetensors``) to
    write again, e.g. in fp16 with --half; an encoder embedded in it is kept.

    \b
    Example:
      stackgan export runs/00001-.../checkpoint-latest.pt --out model.safetensors --half
      stackgan export runs/00001-.../model-best.safetensors --out best-fp16.safetensors --half
      stackgan export runs/00001-.../model-best.safetensors --out best-ss.safetensors \\
        --standing-stats 16 --data ../shared/data/birds-cub50
    """
    from stackgan.checkpoint import (
        checkpoint_config,
        checkpoint_generator,
        embedded_text_encoder,
        export_generator,
        export_training_config,
        load_checkpoint,
        load_export,
        with_stage1,
    )

    training_config = None
    if checkpoint.endswith(".safetensors"):
        state, cfg = load_export(checkpoint)
        training_config = export_training_config(checkpoint)  # kept as the record it is
        encoder = embedded_text_encoder(checkpoint) if cfg.model.conditional else None
        source = f"from the export {checkpoint}"
    else:
        ckpt = load_checkpoint(checkpoint)
        cfg = checkpoint_config(ckpt, checkpoint)
        # shapes checked here: a CRC-valid file with wrong-shaped weights must not replace --out
        state, encoder = checkpoint_generator(ckpt, checkpoint), None
        source = f"step {ckpt['step']}"
    if stage1:
        state, cfg = with_stage1(state, cfg, stage1)
    if standing_stats > 0:
        if cfg.model.conditional and not data_root:
            raise click.UsageError("--standing-stats needs --data for the captions")
        state = _standing(state, cfg, encoder, data_root, standing_stats)
        source += f", standing statistics over {standing_stats} batches"
    export_generator(
        out, state, cfg, half=half, text_encoder=encoder, training_config=training_config
    )
    click.echo(f"wrote {out} ({source})")


def _standing(
    state: dict[str, Any], cfg: ExperimentConfig, encoder: Any, data_root: str, batches: int
) -> dict[str, Any]:
    """The generator ``state`` with its batch-norm statistics recomputed (train.ema)."""
    import torch

    from stackgan.data.layouts import read_index
    from stackgan.models.registry import build_generator
    from stackgan.text.encoders import build_encoder
    from stackgan.train.ema import standing_stats

    g = build_generator(cfg)
    g.load_state_dict(state)
    pool = None
    if cfg.model.conditional:
        captions = [c for caps in read_index(data_root, "train").captions for c in caps]
        enc = encoder if encoder is not None else build_encoder(cfg.text.encoder)
        pool = enc.encode(captions).float()
    standing_stats(g, pool, cfg.model.z_dim, batches, seed=cfg.train.seed)
    out: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in g.state_dict().items()}
    return out
