"""``stackgan data``: render `shapes`, check a dataset folder."""

from __future__ import annotations

import json

import click


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
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cub", "flowers", "coco", "folder"]),
    help="Dataset layout; auto detects it from the folder.",
)
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
