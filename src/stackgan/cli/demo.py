"""``stackgan demo``: the newcomer's first run.

1. renders a small ``shapes`` dataset, 2. samples its test captions with the bundled model and
writes an HTML gallery of Stage-I and Stage-II images with the consistency figures, beside a
gallery of the bundled ``birds`` model on sentences that are in no caption file, 3. runs a short
training so the loop can be seen working (``--no-train`` skips it).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import click

from stackgan.cli.options import model_option

DEMO_IMAGES = 600  # a small shapes set: enough test captions, quick to render and encode


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (gallery at OUT/index.html).",
)
@model_option
@click.option("--num-captions", default=24, show_default=True, help="Captions in the gallery.")
@click.option(
    "--train/--no-train",
    "do_train",
    default=True,
    show_default=True,
    help="Also run a short Stage-I training on the demo data.",
)
@click.option("--train-iters", default=150, show_default=True, help="Iterations of that run.")
@click.option(
    "--num-images",
    default=DEMO_IMAGES,
    show_default=True,
    help="Size of the shapes set rendered for the demo.",
)
@click.option("--seed", default=0, show_default=True)
def demo(
    out_dir: str,
    model: str | None,
    num_captions: int,
    do_train: bool,
    train_iters: int,
    num_images: int,
    seed: int,
) -> None:
    """Gallery of the bundled model on test-split captions, plus a short training run.

    \b
    Example:
      stackgan demo --out demo            # then open demo/index.html
      stackgan demo --no-train            # gallery only (about a minute)
    """
    from stackgan.data.shapes import write_dataset
    from stackgan.metrics.consistency import evaluate_sampler, require_judge
    from stackgan.sampling import Text2ImageSampler
    from stackgan.utils.images import save_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data"
    meta = data_root / "meta.json"
    if not meta.exists() or json.loads(meta.read_text())["num_images"] != num_images:
        click.echo(f"[1/3] rendering {num_images} shapes images into {data_root}")
        write_dataset(data_root, num_images, seed=seed, size=256, overwrite=True)
    else:
        click.echo(f"[1/3] using the shapes data in {data_root}")

    click.echo("[2/3] sampling test-split captions with the bundled model")
    sampler = Text2ImageSampler.from_pretrained(model)
    judge = require_judge(data_root)
    items = judge.captions(data_root, "test", seed=seed)
    shown = items[:num_captions]
    captions = [c for c, _, _ in shown]
    emb = sampler.encode_text(captions)
    stages = sampler.generate(emb, seed=seed)
    from stackgan.utils.images import to_uint8

    img_dir = out / "images"
    img_dir.mkdir(exist_ok=True)
    stage_arrays = [to_uint8(s) for s in stages]
    for s, arrs in enumerate(stage_arrays, start=1):
        for i, a in enumerate(arrs):
            save_png(a, img_dir / f"{i:03d}-stage{s}.png")
    metrics = evaluate_sampler(sampler, data_root, "test", seed=seed, progress=False)
    (out / "consistency.json").write_text(json.dumps(metrics, indent=2) + "\n")
    judged = [judge.describe(a, truth) for a, (_, truth, _) in zip(stage_arrays[-1], shown)]
    birds_note = _birds_gallery(out, seed)

    train_note = "skipped (--no-train)"
    if do_train:
        click.echo(f"[3/3] a short Stage-I training run ({train_iters} iterations)")
        train_note = _short_training(out, data_root, train_iters, seed)
    _write_gallery(out, shown, len(stage_arrays), judged, metrics, train_note, birds_note)
    click.echo(f"gallery: {out / 'index.html'}")
    click.echo(
        f"object colour right in {metrics['object_color_acc']:.1%}, background in "
        f"{metrics['background_acc']:.1%} of {metrics['num_images']} test captions"
    )


def _birds_gallery(out: Path, seed: int) -> str:
    """The bundled birds model on its ten example sentences (none is in a caption file of its
    data), two samples each -> an HTML section (empty when the package has no birds model)."""
    from stackgan.pretrained import PRETRAINED
    from stackgan.sampling import Text2ImageSampler
    from stackgan.utils.images import save_png, to_uint8

    birds = PRETRAINED.get("birds")
    if birds is None or not birds.path.is_file():
        return ""
    click.echo(f"[2/3] sampling {len(birds.examples)} new sentences with the bundled birds model")
    sampler = Text2ImageSampler.from_pretrained("birds")
    captions = [c for c in birds.examples for _ in range(2)]
    stages = [to_uint8(s) for s in sampler.generate(sampler.encode_text(captions), seed=seed)]
    img_dir = out / "images"
    rows = []
    for i, cap in enumerate(birds.examples):
        cells = ""
        for s, arrs in enumerate(stages, start=1):
            for j in (2 * i, 2 * i + 1):
                save_png(arrs[j], img_dir / f"birds-{j:03d}-stage{s}.png")
                cells += (
                    f'<td><img src="images/birds-{j:03d}-stage{s}.png" width="128" '
                    f'height="128" alt="{html.escape(cap)}, stage {s}"></td>'
                )
        rows.append(f"<tr><td class='cap'>{html.escape(cap)}</td>{cells}</tr>")
    size = stages[-1].shape[1]
    # two samples per stage: say which column is which stage and sample
    heads = "".join(
        f"<th>Stage-{'I' * s if s < 4 else s} ({arrs.shape[1]} px), sample {k}</th>"
        for s, arrs in enumerate(stages, start=1)
        for k in (1, 2)
    )
    return (
        f"<h2>Birds: new sentences</h2><p>The bundled <code>birds</code> model "
        f"({html.escape(birds.description)}; {size} px shown at 128 px, two samples per "
        f"sentence). None of these sentences is in its training captions. Model card: "
        f"<code>{html.escape(birds.card)}</code>.</p>"
        f"<table><tr><th>sentence</th>{heads}</tr>{''.join(rows)}</table>"
    )


def _short_training(out: Path, data_root: Path, iters: int, seed: int) -> str:
    from stackgan.config import load_config
    from stackgan.train import make_run_dir, train
    from stackgan.train.rundir import GRID_CAPTIONS, GRID_GLOB, SAMPLES_DIR

    overrides = [
        "name=demo",
        "data.name=shapes",
        f"data.root={data_root}",
        "data.bbox_crop=false",
        "data.random_crop=false",
        "data.random_flip=false",
        "model.stage=1",
        "model.ngf=16",
        "model.ndf=16",
        "train.batch_size=32",
        f"train.total_iters={iters}",
        f"train.tick_iters={max(iters // 3, 1)}",
        "train.amp=off",
        "train.ema_decay=0.99",
        f"train.seed={seed}",
        "train.tensorboard=false",
    ]
    cfg = load_config(None, overrides)
    run_dir = make_run_dir(out / "runs", cfg)
    t0 = time.time()
    train(cfg, run_dir)
    grids = sorted((run_dir / SAMPLES_DIR).glob(GRID_GLOB))
    caps = (run_dir / GRID_CAPTIONS).read_text().splitlines()
    note = (
        f"{iters} iterations of Stage-I at a tiny width (ngf 16, batch 32) in "
        f"{time.time() - t0:.0f} s; run folder "
        f"<code>{html.escape(str(run_dir.relative_to(out)))}</code>. "
        "What to expect: in this few iterations the generator goes from noise to soft, "
        "washed-out textures and does not follow the captions yet. At the shapes preset's "
        "width the background colour comes right after about 2,000 iterations and the object's "
        "colour after several thousand more (the bundled model above had about 25,000 Stage-I "
        "iterations and a GPU fine-tune); this run shows the loop working, not a model."
    )
    if caps:
        items = "".join(f"<li>{html.escape(c)}</li>" for c in caps[:8])
        note += f"<p>The grids' captions, in reading order (first {min(8, len(caps))}):</p>"
        note += f"<ol>{items}</ol>"
    for label, grid in (("after the first tick", grids[0]), ("at the end", grids[-1]))[
        : min(len(grids), 2)
    ]:
        step = int(grid.stem.split("-")[1])
        rel = html.escape(grid.relative_to(out).as_posix())
        note += f'<p>{label} (iteration {step}):<br><img src="{rel}" alt="grid {label}"></p>'
    return note


def _write_gallery(
    out: Path,
    shown: list[tuple[str, Any, bool]],
    num_stages: int,
    judged: list[tuple[bool, str]],
    metrics: dict[str, Any],
    train_note: str,
    birds: str = "",
) -> None:
    rows = []
    for i, ((cap, _, comp), (ok, seen)) in enumerate(zip(shown, judged)):
        cells = "".join(
            f'<td><img src="images/{i:03d}-stage{s}.png" width="256" height="256" '
            f'style="image-rendering:pixelated" alt="stage {s}"></td>'
            for s in range(1, num_stages + 1)
        )
        tag = " <b>(held-out shape-colour pair)</b>" if comp else ""
        rows.append(
            f"<tr><td class='cap'>{html.escape(cap)}{tag}<br><small>judged: "
            f"{html.escape(seen)} "
            f"{'&#10003;' if ok else '&#10007;'}</small></td>{cells}</tr>"
        )
    heads = "".join(f"<th>Stage-{'I' * s if s < 4 else s}</th>" for s in range(1, num_stages + 1))
    m = metrics
    comp_obj = m["compositional_object_color_acc"]
    comp_bg = m["compositional_background_acc"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>stackgan demo</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:4px;vertical-align:top}}
td.cap{{max-width:22em}} table{{border-collapse:collapse}}
tr{{border-bottom:1px solid #ddd}}</style>
</head><body><h1>StackGAN on <code>shapes</code>: Stage-I and Stage-II</h1>
<p>Consistency on {m["num_images"]} test-split captions at {m["resolution"]}px:
object colour right in <b>{m["object_color_acc"]:.1%}</b>, background in
<b>{m["background_acc"]:.1%}</b>; on the {m["num_compositional"]} held-out shape-colour
captions: {_pct(comp_obj)} and {_pct(comp_bg)}.</p>
<table><tr><th>caption</th>{heads}</tr>{"".join(rows)}</table>
{birds}<h2>Short training run</h2><p>{train_note}</p></body></html>"""
    (out / "index.html").write_text(page)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


__all__ = ["demo"]
