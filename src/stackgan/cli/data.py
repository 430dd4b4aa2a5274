"""``stackgan data``: render `shapes`, check a dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stackgan.cli.options import layout_option


@click.group()
def data() -> None:
    """Dataset tools."""


@data.command("shapes")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--num", default=10_000, show_default=True, help="Number of images.")
@click.option("--seed", default=0, show_default=True, help="Seed of attributes and splits.")
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.Choice(["32", "64", "128", "256"]),
    help="Stored resolution (area-downsampled from the 256 render).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty folder.")
def data_shapes(out: str, num: int, seed: int, size: str, overwrite: bool) -> None:
    """Render the embedded `shapes` dataset in the CUB layout.

    \b
    Example:
      stackgan data shapes --out data/shapes --num 10000 --seed 0
    """
    from stackgan.data.shapes import write_dataset

    root = write_dataset(out, num, seed=seed, size=int(size), overwrite=overwrite)
    meta = json.loads((root / "meta.json").read_text())
    click.echo(
        f"wrote {num} images to {root}: {meta['num_train']} train, {meta['num_test']} "
        f"test; held-out pairs {meta['heldout_pairs']}"
    )


@data.command("check")
@click.argument("root", type=click.Path(file_okay=False))
@layout_option
@click.option("--max-problems", default=50, show_default=True, help="Problems listed per split.")
def data_check(root: str, layout: str, max_problems: int) -> None:
    """Report missing, unreadable or uncaptioned images of a dataset folder, by path.

    Exits with status 1 when there is any problem.

    \b
    Examples:
      stackgan data check ../shared/data/birds-cub50
      stackgan data check ~/data/coco --layout coco
    """
    from stackgan.data.check import check_dataset

    found, reports = check_dataset(root, layout)
    click.echo(f"{root}: {found} layout")
    total = 0
    for rep in reports:
        click.echo(
            f"  {rep.split}: {rep.num_images} usable images, {rep.num_captions} captions, "
            f"{len(rep.problems)} problems"
        )
        for line in rep.problems[:max_problems]:
            click.echo(f"    {line}")
        if len(rep.problems) > max_problems:
            click.echo(f"    ... and {len(rep.problems) - max_problems} more")
        total += len(rep.problems)
    if total:
        raise SystemExit(1)
    click.echo("no problems found")


@data.command("pack")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output NAME.pack.")
@click.option(
    "--sizes",
    default="76,304",
    show_default=True,
    help="Load sizes to store, comma-separated: training reads 76 px for a 64 px Stage-I with "
    "random crops and 304 for a 256 px Stage-II (64,256 without random crops, as on shapes).",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    default=("train", "test"),
    show_default=True,
    help="Splits to pack (repeat the option).",
)
@click.option(
    "--format",
    "image_format",
    default="raw",
    show_default=True,
    type=click.Choice(["raw", "png", "jpeg"]),
    help="raw: exact uint8 pixels; png: lossless, smaller; jpeg: lossy, smallest.",
)
@click.option("--quality", default=90, show_default=True, help="JPEG quality.")
@layout_option
@click.option("--no-bbox-crop", is_flag=True, help="Store whole images, not bounding-box crops.")
def data_pack(
    root: str,
    out: str,
    sizes: str,
    splits: tuple[str, ...],
    image_format: str,
    quality: int,
    layout: str,
    no_bbox_crop: bool,
) -> None:
    """Pack a dataset's splits into one file that training reads directly (data.root=FILE).

    The images are stored as training reads them (bounding-box crops, resized to the load
    sizes), with their captions and classes, so a GPU machine or a cluster node needs only
    this file.

    \b
    Examples:
      stackgan data pack data/birds --out birds.pack --split train --format jpeg
      stackgan data pack data/shapes --out shapes.pack --sizes 64,256
      stackgan train configs/v1_birds_stage1.yaml --set data.root=birds.pack --dry-run
    """
    from stackgan.data.packed import pack_dataset

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--sizes {sizes!r}: expected integers like 76,304") from None
    meta = pack_dataset(
        root, out, size_list, splits, image_format, quality, layout, bbox_crop=not no_bbox_crop
    )
    counts = ", ".join(f"{s}: {len(v['keys'])} images" for s, v in meta["splits"].items())
    size_mb = Path(out).stat().st_size / 2**20
    click.echo(f"wrote {out} ({size_mb:.1f} MB; {counts}; {image_format} at {meta['sizes']} px)")
