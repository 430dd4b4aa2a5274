"""``stackgan convert``: the authors' original generator weights as an inference export."""

from __future__ import annotations

import click


@click.command()
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors file."
)
@click.option(
    "--from",
    "source",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "stackgan-pytorch", "stackgan-v2"]),
    help="Which release wrote WEIGHTS; auto tells them apart by their keys.",
)
@click.option("--half", is_flag=True, help="Store weights in fp16 (half the size).")
def convert(weights: str, out: str, source: str, half: bool) -> None:
    """Convert an original StackGAN generator (``netG_*.pth``) for ``stackgan sample``.

    WEIGHTS is a generator state dict saved by hanzhanggit/StackGAN-Pytorch (Stage-I or
    Stage-II) or hanzhanggit/StackGAN-v2 (conditional or unconditional). Sizes are read from
    the tensors; the export conditions on the original char-CNN-RNN sentence vectors
    (``text.encoder: precomputed``), which ``stackgan sample --embeddings`` reads.

    \b
    Examples:
      stackgan convert netG_epoch_600.pth --out birds-original.safetensors
      stackgan convert netG_210000.pth --out birds-v2.safetensors --from stackgan-v2 --half
      stackgan sample --model birds-original.safetensors --embeddings caption.t7
    """
    from stackgan.convert import SOURCES, convert_file

    choice = next(s for s in SOURCES if s == source)  # the click.Choice, typed as a Source
    converted = convert_file(weights, out, choice, half=half)
    m = converted.cfg.model
    sizes = f"text {converted.cfg.text.dim}-d, z {m.z_dim}, ngf {m.ngf}"
    click.echo(f"wrote {out} (a {converted.description}: {sizes})")
