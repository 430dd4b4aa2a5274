"""``stackgan models``: the models bundled with the package."""

from __future__ import annotations

import click


@click.command("models")
def models() -> None:
    """List the bundled models: name, dataset, resolution, headline metrics, model card.

    \b
    Example:
      stackgan models
      stackgan sample --model shapes "a big red star on a sky blue background"
    """
    from stackgan.pretrained import DEFAULT_MODEL, PRETRAINED

    for m in PRETRAINED.values():
        default = " (default)" if m.name == DEFAULT_MODEL else ""
        size_mb = m.path.stat().st_size / 2**20
        click.echo(f"{m.name}{default}: {m.description}")
        click.echo(f"  dataset: {m.dataset}; {m.resolution} px; {size_mb:.1f} MB")
        click.echo("  " + ", ".join(f"{k} {v}" for k, v in m.metrics.items()))
        click.echo(f"  model card: {m.card}")
