"""``stackgan export``: a training checkpoint's EMA generator as an inference file."""

from __future__ import annotations

import click


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
def export(checkpoint: str, out: str, half: bool, stage1: str | None) -> None:
    """Export a training checkpoint's EMA generator for sampling.

    CHECKPOINT may also be an export (``model.safetensors``, ``model-best.safetensors``) to
    write again, e.g. in fp16 with --half; an encoder embedded in it is kept.

    \b
    Example:
      stackgan export runs/00001-.../checkpoint-latest.pt --out model.safetensors --half
      stackgan export runs/00001-.../model-best.safetensors --out best-fp16.safetensors --half
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
    export_generator(
        out, state, cfg, half=half, text_encoder=encoder, training_config=training_config
    )
    click.echo(f"wrote {out} ({source})")
