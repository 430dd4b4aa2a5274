"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

_F = TypeVar("_F", bound=Callable[..., Any])

# the --layout option of every command that reads a dataset folder
layout_option = click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cub", "flowers", "coco", "folder"]),
    help="Dataset layout; auto detects it from the folder.",
)


def data_option(help_text: str) -> Callable[[_F], _F]:
    """The required ``--data DIR`` of the evaluation commands."""
    return click.option(
        "--data", "data_root", required=True, type=click.Path(file_okay=False), help=help_text
    )


# the --model option of every command that reads an inference export
model_option = click.option(
    "--model",
    default=None,
    type=click.Path(dir_okay=False),
    help="A bundled model's name (stackgan models) or an inference export. Default: shapes.",
)


def optional_file(flag: str, help_text: str) -> Callable[[_F], _F]:
    """A ``--flag FILE`` option that defaults to "" (not given)."""
    return click.option(flag, default="", type=click.Path(dir_okay=False), help=help_text)


def class_mask_option(where: str) -> Callable[[_F], _F]:
    """``--class-mask/--no-class-mask``: same-class pairs are no negatives (AttnGAN's DAMSM)."""
    return click.option(
        "--class-mask/--no-class-mask",
        default=None,
        help=f"Leave other images of the same class out of {where} (AttnGAN's DAMSM). "
        "Default: on when the data has classes, except for shapes (whose shape-colour classes "
        "do not fix the caption).",
    )
