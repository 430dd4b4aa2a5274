"""``stackgan eval``: one command for a model's metrics, written as metrics.json and a report.

For each image of the dataset's test split one caption is drawn (seeded; on a dataset with a
judge, such as ``shapes``, one the judge can check) and one image generated at the model's
highest resolution. Then each metric of the registry (:mod:`stackgan.metrics.registry`; by
default :data:`DEFAULT_METRICS`, those that apply) is computed on those images:

- FID against the real test images at that resolution (Inception pool3, real features cached);
- Inception Score under the dataset's pool3 head (trained on the real training images, the
  analogue of the authors' Inception fine-tuned on CUB), or a user's classifier, 10 splits;
- diversity: mean pairwise distance, in pool3 space, between samples of the same caption;
- R-precision (AttnGAN) under a trained text-image model, real test images beside it;
- on ``shapes``, text-image consistency: object colour and background by palette statistics,
  and all six attributes by a classifier trained on the real renders (the dataset's judge,
  ``metrics/judges.py``).

Then the paper's figures are drawn. Each metric's result is appended to
``OUT/metric-<name>.jsonl`` as in a training run; ``metrics.json`` and ``report.html`` (images
inline, readable offline) go to the output folder, with ``samples.jsonl``, the samples the
report shows and the ``stackgan sample`` command that remakes each
(:mod:`stackgan.metrics.manifest`), and one JSON line per run is appended to a history file so
runs can be compared.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stackgan.metrics import figures as F
from stackgan.metrics.base import MetricError, MetricUnavailableError
from stackgan.metrics.diversity import DIVERSITY_CAPTIONS
from stackgan.metrics.features import feature_network
from stackgan.metrics.manifest import shown_samples, write_manifest
from stackgan.metrics.options import (
    MetricOptions,
    generated,
    metric_captions,
    real_split,
    train_split,
)
from stackgan.metrics.registry import calc_metric, report_metric
from stackgan.sampling import Sampler, Text2ImageSampler
from stackgan.utils.cache import atomic_write
from stackgan.utils.images import make_grid, save_png, to_uint8

logger = logging.getLogger(__name__)

# what `stackgan eval` measures unless told: every metric of the report (kid: by name)
DEFAULT_METRICS = ("fid", "is", "r_precision", "diversity", "consistency", "attributes")
REPORT_CAPTIONS = 8  # captions shown stage by stage in the report
REPORT_GRID = 32  # captions in the report's sample grid (listed in samples.jsonl)


@dataclass
class EvalOptions:
    """What ``stackgan eval`` measures, and where it writes."""

    data_root: str
    out_dir: str
    model: str | None = None  # None: the bundled model
    split: str = "test"
    num_samples: int = 0  # 0: one per image of the split; more: further captions of each
    max_train: int = 0  # real training images for the IS head (0: all)
    seed: int = 0
    device: str = "cpu"
    history: str = ""  # "" : <out_dir>/../eval-history.jsonl
    # a trained text-image model (`stackgan text-encoder train`) for R-precision; "" : the
    # generator's own text encoder when it is one, else no R-precision
    matcher: str = ""
    # a TorchScript classifier, (N, 3, 299, 299) in [-1, 1] -> (N, C) logits, or a pytorch-fid
    # Inception .pth (its 1008 logits: the standard IS network), in place of the dataset's head
    is_classifier: str = ""
    # a pytorch-fid / torch-fidelity pt_inception-2015-12-05 .pth for FID ("" : default_1.pt)
    fid_weights: str = ""
    # registered metric names, with counts where wanted (e.g. fid2k, kid); () : DEFAULT_METRICS,
    # skipping those that do not apply to the model or the data
    metrics: tuple[str, ...] = ()
    # score this stage's images (a v1 Stage-II's Stage-I, a tree's 64 px branch); 0: the last
    resolution: int = 0


def _png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def evaluate(
    opts: EvalOptions, extractor: torch.nn.Module | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run the metrics of ``opts`` through the registry, then the figures and the report;
    returns the metrics dict (also written to disk)."""

    t0 = time.time()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampler = Text2ImageSampler.from_pretrained(opts.model, device=opts.device)
    if opts.resolution:
        try:
            sampler = sampler.up_to(opts.resolution)
        except ValueError as exc:
            raise MetricError(f"--resolution {opts.resolution}: {exc}") from exc
    net = (
        extractor
        if extractor is not None
        else feature_network(opts.fid_weights or None, opts.device)
    )
    size = sampler.resolution

    # 1. the options every metric shares
    mopts = MetricOptions(
        sampler,
        opts.data_root,
        opts.split,
        opts.num_samples,
        opts.seed,
        progress,
        detector=net,
        matcher=opts.matcher,
        is_classifier=opts.is_classifier,
        max_train=opts.max_train,
    )
    captions, _ = metric_captions(mopts)
    real, _ = real_split(mopts)
    res: dict[str, Any] = {
        "model": str(opts.model or "bundled"),
        "data": str(opts.data_root),
        "split": opts.split,
        "resolution": size,
        "num_samples": len(captions),
        "num_real": len(real),
        "detector": getattr(net, "name", type(net).__name__),
        "seed": opts.seed,
    }

    # 2. the metrics, one generation shared by all (each also to OUT/metric-<name>.jsonl)
    for name in opts.metrics or DEFAULT_METRICS:
        try:
            result = calc_metric(name, mopts)
        except MetricUnavailableError as exc:
            if opts.metrics:  # asked for by name: say why not
                raise
            logger.info("skipped %s", exc)
            continue
        report_metric(result, out, model=res["model"])
        res.update(result["results"])
    gen = generated(mopts, need_features=True)  # (the figures' images: already made)
    res["seconds"] = round(time.time() - t0, 1)

    # 3. the samples the report shows, made again one caption at a time as `stackgan sample`
    # makes them (listed in samples.jsonl), and the paper's figures, as PNGs beside the report
    shown = shown_samples(sampler, captions, opts.seed, REPORT_GRID, opts.model, opts.device)
    stage_rows = shown.stage_rows[:REPORT_CAPTIONS]
    emb = None  # an unconditional model: nearest neighbours only
    if sampler.conditional:
        # (encoded as many as before the registry, so the embeddings are bit for bit the same)
        emb = sampler.encode_text(captions[: max(DIVERSITY_CAPTIONS, FIGURE_CAPTIONS)])
    train, train_ds = train_split(mopts)
    fake = gen["features"]
    figs = _figures(sampler, emb, fake, shown.finals, train, train_ds, size, opts.seed)
    for name, img in figs.items():
        save_png(img, out / f"fig-{name}.png")
    if stage_rows:  # the paper's Stage-I vs Stage-II figure, as a PNG too
        save_png(np.concatenate(stage_rows, axis=0), out / "fig-stages.png")
    cells = {i: [f"fig-stages.png: row {i}"] for i in range(len(stage_rows))}
    for i in range(min(FIGURE_CAPTIONS, len(fake))):
        cells[i].append(f"fig-nearest-neighbours.png: row {i}, column 0")
    write_manifest(out, shown, cells)

    # 4. write: metrics.json, report.html, one line of history
    (out / "metrics.json").write_text(json.dumps(res, indent=2) + "\n")
    grid = make_grid(np.stack(shown.finals), nrow=8)
    _write_report(out / "report.html", res, captions, stage_rows, grid, figs)
    history = Path(opts.history) if opts.history else out.parent / "eval-history.jsonl"
    with open(history, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **res}) + "\n")
    return res


def _cell(value: Any) -> str:
    """A report table cell: numbers to 4 significant digits, dicts (per-attribute, per-size
    results) as nested tables."""
    if isinstance(value, dict):
        inner = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in value.items()
        )
        return f"<table>{inner}</table>"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


FIGURE_TITLES = {
    "text-interpolation": "Text interpolation: caption 1 to caption 2 at fixed z (two z's)",
    "z-interpolation": "z interpolation at fixed captions",
    "ca-on": "Conditioning Augmentation on: one caption per row, eps drawn",
    "ca-off": "Conditioning Augmentation off (eps = 0), same z's",
    "nearest-neighbours": "Generated (left) and its 5 nearest training images (pool3)",
}
FIGURE_CAPTIONS = 4  # rows of the z-interpolation, CA and nearest-neighbour figures


def _figures(
    sampler: Sampler,
    emb: torch.Tensor | None,
    fake: np.ndarray,
    finals: list[np.ndarray],
    train: np.ndarray,
    train_ds: Any,
    size: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """The paper's figures; without text embeddings (an unconditional model), only the
    nearest training images."""
    n = min(FIGURE_CAPTIONS, len(fake))
    figs: dict[str, np.ndarray] = {}
    if emb is not None:
        figs["text-interpolation"] = F.text_interpolation(sampler, emb[0], emb[1], seed=seed)
        figs["z-interpolation"] = F.z_interpolation(sampler, emb[:n], seed=seed)
        figs["ca-on"], figs["ca-off"] = F.ca_ablation(sampler, emb[:n], seed=seed)
    idx = F.nearest_indices(fake[:n], train)  # (n, k)
    neighbours = train_ds.images_at(torch.from_numpy(idx.reshape(-1)), [size], augment=False)[0]
    figs["nearest-neighbours"] = F.neighbour_grid(
        np.stack(finals[:n]), to_uint8(neighbours).reshape(*idx.shape, size, size, 3)
    )
    return figs


def _write_report(
    path: Path,
    res: dict[str, Any],
    captions: list[str],
    stage_rows: list[np.ndarray],
    grid: np.ndarray,
    figs: dict[str, np.ndarray],
) -> None:
    rows = [
        f"<tr><th>{html.escape(key)}</th><td>{_cell(value)}</td></tr>" for key, value in res.items()
    ]
    stages = "\n".join(
        f'<figure><img alt="sample {i}" src="data:image/png;base64,{_png_b64(strip)}">'
        f"<figcaption>{html.escape(captions[i])}</figcaption></figure>"
        for i, strip in enumerate(stage_rows)
    )
    figures = "\n".join(
        f"<h3>{html.escape(FIGURE_TITLES[name])}</h3>"
        f'<img alt="{name}" src="data:image/png;base64,{_png_b64(img)}">'
        for name, img in figs.items()
    )
    if "text-interpolation" in figs:
        figures = (
            f"<p>Text interpolation from &ldquo;{html.escape(captions[0])}&rdquo; to "
            f"&ldquo;{html.escape(captions[1])}&rdquo;.</p>\n" + figures
        )
    title = html.escape(f"stackgan eval: {res['model']}")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .3em .6em; }}
th {{ text-align: left; background: #f4f4f4; }} figure {{ margin: 1em 0; }}
img {{ image-rendering: pixelated; max-width: 100%; }} figcaption {{ color: #444; }}
</style></head><body>
<h1>stackgan eval</h1>
<h2>Metrics</h2>
<table>{"".join(rows)}</table>
<h2>Stages of the first captions (lowest resolution first)</h2>
{stages}
<h2>Samples, one per caption</h2>
<img alt="sample grid" src="data:image/png;base64,{_png_b64(grid)}">
<h2>The paper's figures</h2>
{figures}
<script>
// Self-check for headless browsers: how many images decoded (see metrics/browser.py).
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</body></html>
"""
    atomic_write(path, lambda tmp: tmp.write_text(page))
