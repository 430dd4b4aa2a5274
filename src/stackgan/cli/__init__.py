"""The ``stackgan`` command line: train | sample | export | convert | data | eval |
consistency | text-encoder | models | demo | serve.

One module per command, each a thin layer over a library function; this module holds the group,
its error handling and console logging.
"""

from __future__ import annotations

import logging
import sys

import click

from stackgan import __version__
from stackgan.cli.convert import convert
from stackgan.cli.data import data
from stackgan.cli.demo import demo
from stackgan.cli.evaluate import consistency, eval_cmd
from stackgan.cli.export import export
from stackgan.cli.models import models
from stackgan.cli.sample import sample
from stackgan.cli.serve import serve
from stackgan.cli.text_encoder import text_encoder
from stackgan.cli.train import train
from stackgan.errors import StackGANError

logger = logging.getLogger("stackgan")


class _Errors(click.Group):
    """Turn the library's own error types, bad values and file-system errors into one clean
    line instead of a traceback (``-v`` shows the traceback)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (StackGANError, ValueError, OSError) as exc:
            # StackGANError: the library's own errors (stackgan.errors lists them: a bad config,
            # dataset, checkpoint, caption, device, a failed training run, ...); ValueError a
            # bad value; OSError the file system (a full disk, a missing or unwritable path)
            if logging.getLogger("stackgan").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
        except (RecursionError, MemoryError, OverflowError) as exc:
            # every reader bounds its input (sizes, nesting, counts) before these can happen;
            # this is the backstop for a path that does not yet, still one line
            if logging.getLogger("stackgan").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(
                f"{type(exc).__name__}: an input too large or nested too deeply "
                f"({str(exc)[:200]}); run with -v for the traceback"
            ) from exc


def _setup_console_logging(verbose: bool) -> None:
    root = logging.getLogger("stackgan")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stackgan")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """StackGAN / StackGAN++ text-to-image synthesis."""
    _setup_console_logging(verbose)


for _command in (
    train,
    sample,
    export,
    convert,
    data,
    consistency,
    eval_cmd,
    text_encoder,
    demo,
    serve,
    models,
):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
