"""``stackgan eval`` and ``stackgan consistency``: metrics of a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stackgan.cli.options import data_option, model_option, optional_file


@click.command()
@model_option
@data_option("A shapes dataset folder (stackgan data shapes).")
@click.option("--split", default="test", show_default=True)
@click.option("--num", default=0, show_default=True, help="Use the first N captions (0 = all).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the figures to this JSON file.",
)
def consistency(
    model: str | None, data_root: str, split: str, num: int, seed: int, device: str, out: str | None
) -> None:
    """Text-image consistency on shapes: object colour and background by palette statistics.

    \b
    Example:
      stackgan consistency --data data/shapes --out consistency.json
    """
    from stackgan.metrics.consistency import evaluate_sampler
    from stackgan.sampling import Text2ImageSampler

    sampler = Text2ImageSampler.from_pretrained(model, device=device)
    res = evaluate_sampler(sampler, data_root, split, num, seed)
    res["model"] = str(model or "bundled")
    text = json.dumps(res, indent=2)
    click.echo(text)
    if out:  # (a missing folder is created: the figures took minutes to compute)
        from stackgan.utils.cache import atomic_write

        atomic_write(Path(out), lambda tmp: tmp.write_text(text + "\n"))


@click.command("eval")
@model_option
@data_option("Dataset folder (its test split is the reference).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--num-samples",
    default=0,
    show_default=True,
    help="Images to generate: 0 = one per test image; more than the test images draws further "
    "captions of each (e.g. 2000 on birds-cub50's 983).",
)
@click.option(
    "--max-train",
    default=0,
    show_default=True,
    help="Real training images for the Inception-Score head (0 = all).",
)
@click.option("--split", default="test", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--history",
    default="",
    help="JSON-lines file each run is appended to. Default: OUT/../eval-history.jsonl.",
)
@click.option(
    "--screenshot",
    is_flag=True,
    help="Also open report.html in headless Chromium: OUT/report.png, and check images load.",
)
@optional_file(
    "--matcher",
    "Trained text-image model (stackgan text-encoder train) for R-precision. Default: the "
    "generator's own text encoder when it is one.",
)
@optional_file(
    "--is-classifier",
    "TorchScript classifier ((N,3,299,299) in [-1,1] -> logits), or a pytorch-fid .pth, for the "
    "Inception Score, instead of the dataset's pool3 head.",
)
@click.option(
    "--metrics",
    default="",
    help="Comma-separated metric names, each with an optional sample count (fid2k = FID of "
    "2,000 images; an unknown name lists the known ones). Default: fid, is, r_precision, "
    "diversity, consistency, attributes, skipping those that do not apply.",
)
@optional_file(
    "--fid-weights",
    "pytorch-fid / torch-fidelity pt_inception-2015-12-05-*.pth for FID, instead of the "
    "TorchScript default_1.pt (same network).",
)
@click.option(
    "--resolution",
    default=0,
    show_default=True,
    help="Score the stage of this size instead of the last (64: a v1 Stage-II model's "
    "Stage-I, a StackGAN++ tree's first branch); 0 = the model's output.",
)
def eval_cmd(
    model: str | None,
    data_root: str,
    out_dir: str,
    num_samples: int,
    max_train: int,
    split: str,
    seed: int,
    device: str,
    history: str,
    screenshot: bool,
    matcher: str,
    is_classifier: str,
    metrics: str,
    fid_weights: str,
    resolution: int,
) -> None:
    """FID, Inception Score, diversity, R-precision (with a trained text-image model) and, on
    shapes, per-attribute consistency -> metrics.json, report.html, metric-<name>.jsonl.

    \b
    Examples:
      stackgan eval --data data/shapes --out eval/bundled
      stackgan eval --data data/shapes --out eval/kid --metrics fid2k,kid2k
      stackgan eval --model runs/00001-.../model.safetensors --data data/shapes --out eval/run1
    """
    from stackgan.metrics.base import MetricError
    from stackgan.metrics.evaluate import EvalOptions, evaluate
    from stackgan.metrics.registry import metric_spec

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    for name in names:  # an unknown name fails before the model and the data are read
        try:
            metric_spec(name)
        except MetricError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    opts = EvalOptions(
        data_root,
        out_dir,
        model,
        split,
        num_samples,
        max_train,
        seed,
        device,
        history,
        matcher=matcher,
        is_classifier=is_classifier,
        fid_weights=fid_weights,
        metrics=names,
        resolution=resolution,
    )
    try:
        res = evaluate(opts)
    except MetricError as exc:  # a metric that cannot run here: one line, not a traceback
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    click.echo(json.dumps(res, indent=2))
    click.echo(f"wrote {Path(out_dir) / 'metrics.json'} and {Path(out_dir) / 'report.html'}")
    if screenshot:
        from stackgan.metrics.browser import check_report

        loaded, total = check_report(Path(out_dir) / "report.html", Path(out_dir) / "report.png")
        click.echo(f"report.png: {loaded} of {total} images decoded in headless Chromium")
        if loaded != total:
            raise click.ClickException(f"only {loaded} of {total} report images decoded")
