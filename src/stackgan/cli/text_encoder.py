"""``stackgan text-encoder``: train, evaluate and extract text encoders."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stackgan.cli.options import class_mask_option


@click.group("text-encoder")
def text_encoder() -> None:
    """Train and evaluate text encoders (captions matched against image features)."""


@text_encoder.command("train")
@click.option("--data", "data_root", required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--max-train", default=0, show_default=True, help="Use the first N train images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--buckets",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=16),
    help="Rows of the hashed word/character-n-gram table (128 floats each, most of the "
    "file's size); a small vocabulary such as shapes' needs a few thousand.",
)
@class_mask_option("each caption's negatives")
def text_encoder_train(
    data_root: str,
    out: str,
    epochs: int,
    batch_size: int,
    lr: float,
    max_train: int,
    seed: int,
    device: str,
    buckets: int,
    class_mask: bool | None,
) -> None:
    """Train the n-gram BiGRU text encoder against Inception pool3 features of the images.

    \b
    Example:
      stackgan text-encoder train --data ../shared/data/birds-cub50 --out birds-text.safetensors
      stackgan train configs/v1_birds_stage1.yaml --set text.encoder=birds-text.safetensors \\
          --set text.dim=256
    """
    if not out.endswith(".safetensors"):
        raise click.UsageError("--out must end in .safetensors")
    from stackgan.train.text_encoder import train_text_encoder

    matcher, losses = train_text_encoder(
        data_root,
        out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_train=max_train,
        seed=seed,
        device=device,
        buckets=buckets,
        class_mask=class_mask,
    )
    click.echo(f"wrote {out}: {matcher.text.out_dim}-d, loss {losses[0]:.3f} -> {losses[-1]:.3f}")


@text_encoder.command("extract")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors.")
def text_encoder_extract(model: str, out: str) -> None:
    """Write the text encoder embedded in a GAN export as an encoder file of its own.

    A run that fine-tunes an export (train.init_from) needs its encoder under the path its
    config names (text.encoder); this writes it there.

    \b
    Example:
      stackgan text-encoder extract src/stackgan/assets/shapes-v1.safetensors \\
          --out runs/text/shapes-text-b4k.safetensors
    """
    if not out.endswith(".safetensors"):
        raise click.UsageError("--out must end in .safetensors")
    from stackgan.checkpoint import embedded_text_encoder, load_export
    from stackgan.text.trainable import save_matcher

    _, cfg = load_export(model)
    enc = embedded_text_encoder(model)
    if enc is None:
        raise click.ClickException(
            f"{model} embeds no text encoder (text.encoder {cfg.text.encoder})"
        )
    save_matcher(out, enc.matcher, {"extracted_from": str(model), "digest": enc.meta["digest"]})
    click.echo(f"wrote {out}: the encoder of {model} (its config names {cfg.text.encoder})")


@text_encoder.command("eval")
@click.option("--data", "data_root", required=True, type=click.Path(file_okay=False))
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    required=True,
    help="minilm, random (the untrained architecture, a floor) or a trained .safetensors; "
    "repeat to compare.",
)
@click.option("--max-train", default=0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="JSON results file.")
@class_mask_option("the negatives when fitting the image projection of an untrained encoder")
def text_encoder_eval(
    data_root: str,
    encoders: tuple[str, ...],
    max_train: int,
    seed: int,
    device: str,
    out: str | None,
    class_mask: bool | None,
) -> None:
    """R-precision (1 true + 99 random captions) and top-1/5 text-to-image retrieval.

    \b
    Example:
      stackgan text-encoder eval --data ../shared/data/birds-cub50 \\
          --encoder minilm --encoder random --encoder birds-text.safetensors
    """
    from stackgan.metrics.features import InceptionFeatures
    from stackgan.metrics.text_retrieval import evaluate_text_encoder

    net = InceptionFeatures(device=device)
    rows = [
        evaluate_text_encoder(
            data_root,
            e,
            net,
            max_train=max_train,
            seed=seed,
            device=device,
            class_mask=class_mask,
        )
        for e in encoders
    ]
    click.echo(f"{'encoder':40s} {'R-precision':>16s} {'top-1':>7s} {'top-5':>7s}")
    for r in rows:
        click.echo(
            f"{r['encoder'][-40:]:40s} {r['r_precision']:8.3f} ± {r['r_precision_std']:.3f} "
            f"{r['top1']:7.3f} {r['top5']:7.3f}"
        )
    pairs = []
    if len(rows) > 1:
        from stackgan.metrics.r_precision import paired_comparison

        click.echo(
            "\npaired (same images, same negatives): difference of R-precision, 95% bootstrap "
            "interval, exact McNemar p"
        )
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                cmp = paired_comparison(a["hits"], b["hits"], seed=seed)
                pairs.append({"a": a["encoder"], "b": b["encoder"], **cmp})
                click.echo(
                    f"  {a['encoder'][-30:]} - {b['encoder'][-30:]}: {cmp['difference']:+.3f} "
                    f"[{cmp['ci95_low']:+.3f}, {cmp['ci95_high']:+.3f}]  p = {cmp['mcnemar_p']:.2g}"
                )
    if out:
        from stackgan.utils.cache import atomic_write

        results = {
            "encoders": [{k: v for k, v in r.items() if k != "hits"} for r in rows],
            "paired": pairs,
        }
        text = json.dumps(results, indent=2) + "\n"
        atomic_write(Path(out), lambda tmp: tmp.write_text(text))
