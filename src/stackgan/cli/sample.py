"""``stackgan sample``: images from sentences (or stored sentence vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from stackgan.cli.options import model_option


@click.command()
@click.argument("caption", nargs=-1)
@click.option(
    "--captions",
    "captions_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Text file: one caption per non-empty line.",
)
@click.option(
    "--out",
    "out_dir",
    default="samples",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder.",
)
@model_option
@click.option("--seed", default=0, show_default=True, help="Random seed for z and CA noise.")
@click.option(
    "--num",
    "num_images",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images per caption; for an unconditional (StackGAN++) model, images in all.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option(
    "--save-stages", is_flag=True, help="Also write every stage's image as DIR/stageK/NNNN.png."
)
@click.option(
    "--embeddings",
    "embeddings_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Sample from precomputed sentence vectors instead of text: the original StackGAN "
    "demo's .t7 (raw_txt + fea_txt) or an (N, D) .npy.",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images generated, written and freed at a time (bounds memory).",
)
@click.option(
    "--grid",
    "grid_max",
    default=64,
    show_default=True,
    type=click.IntRange(min=0),
    help="grid.png shows the first N images; 0 writes no grid.",
)
def sample(
    caption: tuple[str, ...],
    captions_file: str | None,
    out_dir: str,
    model: str | None,
    seed: int,
    num_images: int,
    device: str,
    save_stages: bool,
    embeddings_file: str | None,
    batch_size: int,
    grid_max: int,
) -> None:
    """Generate one image per caption: DIR/0000.png, 0001.png, ... and DIR/grid.png (the first
    64). Images are written batch by batch as they are made, so any number of captions fits in
    the memory of one batch.

    With --num K, K consecutive images per caption. An unconditional StackGAN++ model takes no
    captions and writes --num images.

    \b
    Examples:
      stackgan sample "a big red star on a sky blue background"
      stackgan sample --captions captions.txt --out out/ --seed 3
      stackgan sample --model runs/00001-.../model.safetensors "a tiny blue circle"
      stackgan sample --model runs/00004-v2-folder-3branch-uncond-bs24/model.safetensors --num 16
      stackgan sample --model birds-charcnnrnn.safetensors --embeddings caption.t7
    """
    from stackgan.sampling import Text2ImageSampler
    from stackgan.utils.textio import read_text_file

    captions = list(caption)
    if captions_file is not None:
        path = Path(captions_file)
        if not path.is_file():
            raise click.ClickException(f"captions file not found: {path}")
        captions += [ln.strip() for ln in read_text_file(path).splitlines() if ln.strip()]
    out = Path(out_dir)
    _check_out_dir(out)  # before the model loads: a bad --out fails at once
    sampler = Text2ImageSampler.from_pretrained(model, device=device)
    text_emb = None
    if embeddings_file is not None:
        text_emb = _read_embeddings(sampler, Path(embeddings_file))
    elif not sampler.conditional:
        if captions:
            raise click.UsageError("this model is unconditional: give --num N, not captions")
    elif not captions:
        raise click.UsageError("give a caption or --captions FILE")
    else:
        sampler.check_inputs(captions, num_images)
    batches = sampler.stream(
        captions or None, seed=seed, num_images=num_images, batch_size=batch_size, text_emb=text_emb
    )
    _write_samples(batches, out, sampler.resolution, save_stages, grid_max)


def _check_out_dir(out: Path) -> None:
    """Fail early, and without creating anything, when ``out`` cannot be a folder."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise click.ClickException(f"--out {out}: {p} is a file, not a folder")
            return


def _write_samples(
    batches: Any, out: Path, resolution: int, save_stages: bool, grid_max: int
) -> None:
    """The `sample` contract, written batch by batch as the images come (memory is bounded by
    the batch): OUT/0000.png, 0001.png, ..., with --save-stages OUT/stageK/NNNN.png, and
    OUT/grid.png of the first ``grid_max`` images (none when 0)."""
    import numpy as np

    from stackgan.utils.images import make_grid, save_png

    n = 0
    grid: list[np.ndarray] = []
    for batch in batches:
        out.mkdir(parents=True, exist_ok=True)
        for j, im in enumerate(batch.images):
            a = np.asarray(im)
            save_png(a, out / f"{n + j:04d}.png")
            if len(grid) < grid_max:
                grid.append(a)
        if save_stages:
            for s, imgs in enumerate(batch.stage_images, start=1):
                (out / f"stage{s}").mkdir(exist_ok=True)
                for j, im in enumerate(imgs):
                    save_png(np.asarray(im), out / f"stage{s}" / f"{n + j:04d}.png")
        n += len(batch.images)
    note = ""
    if grid:
        save_png(make_grid(np.stack(grid), nrow=min(8, len(grid))), out / "grid.png")
        note = f" and grid.png (the first {len(grid)})"
    click.echo(f"wrote {n} image{'s' if n != 1 else ''} ({resolution}px){note} to {out}")


def _read_embeddings(sampler: Any, path: Path) -> Any:
    """``stackgan sample --embeddings``: stored sentence vectors as an (N, D) tensor."""
    import torch

    from stackgan.text.torch7 import load_sentence_vectors

    sentences, arr = load_sentence_vectors(path)
    if not sampler.conditional or arr.shape[1] != sampler.text_dim:
        raise click.ClickException(
            f"{path} holds {arr.shape[1]}-d vectors but the model takes "
            f"{sampler.text_dim if sampler.conditional else 'no'} text input "
            f"({sampler.cfg.text.encoder})"
        )
    for i, text in enumerate(sentences):
        click.echo(f"{i:04d}: {text}")
    return torch.from_numpy(arr)
