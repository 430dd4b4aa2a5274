"""``stackgan eval``: one command for a model's metrics, written as metrics.json and a report.

For each image of the dataset's test split one caption is drawn (seeded; on ``shapes`` one that
names the background, so the consistency judge can score it) and one image generated at the
model's highest resolution. Then:

- FID against the real test images at that resolution (Inception pool3, real features cached);
- Inception Score under the dataset's pool3 head (trained on the real training images, the
  analogue of the authors' Inception fine-tuned on CUB), or a user's classifier, 10 splits;
- diversity: mean pairwise distance, in pool3 space, between samples of the same caption;
- R-precision (AttnGAN) under a trained text-image model, real test images beside it;
- on ``shapes``, text-image consistency: object colour and background by palette statistics,
  and all six attributes by a classifier trained on the real renders (``metrics/attributes``).

``metrics.json`` and ``report.html`` (images inline, readable offline) go to the output folder,
and one JSON line per run is appended to a history file so runs can be compared.
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
from stackgan.metrics.attributes import attribute_consistency
from stackgan.metrics.base import MetricError
from stackgan.metrics.consistency import score
from stackgan.metrics.features import feature_network
from stackgan.metrics.fid_inception import load_fid_weights, preprocess
from stackgan.metrics.generation import GEN_BATCH
from stackgan.metrics.inception_score import (
    PAPER_SPLITS,
    head_probabilities,
    inception_score,
    train_head,
)
from stackgan.metrics.r_precision import r_precision
from stackgan.metrics.real import dataset_features
from stackgan.metrics.registry import MetricOptions, calc_metric, metric_captions
from stackgan.sampling import Sampler, Text2ImageSampler
from stackgan.text.trainable import TrainedTextEncoder
from stackgan.utils.cache import atomic_write
from stackgan.utils.images import make_grid, resize_to, save_png, to_uint8

logger = logging.getLogger(__name__)

DIVERSITY_CAPTIONS = 20  # captions sampled several times for the diversity figure
DIVERSITY_SAMPLES = 4  # samples per caption
REPORT_CAPTIONS = 8  # captions shown stage by stage in the report


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


def _png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def evaluate(
    opts: EvalOptions, extractor: torch.nn.Module | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run every metric for ``opts``; returns the metrics dict (also written to disk)."""

    t0 = time.time()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampler = Text2ImageSampler.from_pretrained(opts.model, device=opts.device)
    net = (
        extractor
        if extractor is not None
        else feature_network(opts.fid_weights or None, opts.device)
    )
    classifier = UserClassifier(opts.is_classifier, opts.device) if opts.is_classifier else None
    size = sampler.resolution

    # 1. real features (cached beside the dataset) and the captions to generate from: the
    # metric registry's, so training-time metrics measure the same thing
    stage_rows: list[np.ndarray] = []

    def keep_stages(stages: list[torch.Tensor]) -> None:
        if len(stage_rows) < REPORT_CAPTIONS:
            stage_rows.extend(_stage_tiles(stages, size)[: REPORT_CAPTIONS - len(stage_rows)])

    mopts = MetricOptions(
        sampler,
        opts.data_root,
        opts.split,
        opts.num_samples,
        opts.seed,
        progress,
        detector=net,
        on_batch=keep_stages,
    )
    captions, items = metric_captions(mopts)
    train, train_ds = dataset_features(
        opts.data_root, "train", size, net, max_images=opts.max_train, progress=progress
    )

    # 2. generate one image per caption and measure FID (and, on shapes, consistency) through
    # the registry; IS, R-precision and the figures reuse its images and features
    fid = calc_metric("fid", mopts)
    real, test_ds = mopts.cache["real"]
    fake, finals = mopts.generated["features"], mopts.generated["images"]

    # 3. metrics
    res: dict[str, Any] = {
        "model": str(opts.model or "bundled"),
        "data": str(opts.data_root),
        "split": opts.split,
        "resolution": size,
        "num_samples": len(captions),
        "num_real": len(real),
        "detector": getattr(net, "name", type(net).__name__),
        "seed": opts.seed,
        **fid["results"],
    }
    res.update(_inception_score(opts, classifier, finals, fake, real, train, train_ds))
    emb = None  # an unconditional model: FID, IS and nearest neighbours, nothing about text
    if sampler.conditional:
        matcher = TrainedTextEncoder(opts.matcher) if opts.matcher else _own_matcher(sampler)
        if matcher is not None:
            res.update(_r_precision(matcher, captions, fake, real, test_ds, opts.seed))
        # the diversity figure and the paper's figures use the first captions only
        emb = sampler.encode_text(captions[: max(DIVERSITY_CAPTIONS, FIGURE_CAPTIONS)])
        res["diversity"] = _diversity(sampler, emb, net, opts.seed)
        res["diversity_ca_off"] = _diversity(sampler, emb, net, opts.seed, ca_noise=False)
    if items is not None:
        attrs, comp = [a for _, a, _ in items], [c for _, _, c in items]
        res["consistency"] = score(finals, attrs, comp)  # the registry's images, full detail
        res["attributes"] = attribute_consistency(finals, attrs, comp, opts.data_root, progress)
    res["seconds"] = round(time.time() - t0, 1)

    # 4. the paper's figures, as PNGs beside the report
    figs = _figures(sampler, emb, captions, fake, finals, train, train_ds, size, opts.seed)
    for name, img in figs.items():
        save_png(img, out / f"fig-{name}.png")
    if stage_rows:  # the paper's Stage-I vs Stage-II figure, as a PNG too
        save_png(np.concatenate(stage_rows, axis=0), out / "fig-stages.png")

    # 5. write: metrics.json, report.html, one line of history
    (out / "metrics.json").write_text(json.dumps(res, indent=2) + "\n")
    grid = make_grid(np.stack(finals[:32]), nrow=8)
    _write_report(out / "report.html", res, captions, stage_rows, grid, figs)
    history = Path(opts.history) if opts.history else out.parent / "eval-history.jsonl"
    with open(history, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **res}) + "\n")
    return res


def _inception_score(
    opts: EvalOptions,
    classifier: UserClassifier | None,
    finals: list[np.ndarray],
    fake: np.ndarray,
    real: np.ndarray,
    train: np.ndarray,
    train_ds: Any,
) -> dict[str, Any]:
    """IS of the generated images under the user's classifier, or the dataset's pool3 head
    (trained on the real training images) with the real test images' IS beside it."""
    res: dict[str, Any] = {}
    order = np.random.default_rng(opts.seed).permutation(len(fake))  # IS splits mix captions
    splits = min(PAPER_SPLITS, len(fake), len(real))  # 10 as the paper, fewer for tiny runs
    labels = train_ds.class_ids.numpy()
    if classifier is not None:
        probs = classifier.probabilities(np.stack(finals)[order])
        res["is"], res["is_std"] = inception_score(probs, splits)
        res["is_classifier"] = str(opts.is_classifier)
        res["is_num_classes"] = int(probs.shape[1])
    elif train_ds.has_classes and len(np.unique(labels)) > 1:
        head = train_head(train, labels, seed=opts.seed)
        probs = head_probabilities(head, fake[order])
        res["is"], res["is_std"] = inception_score(probs, splits)
        res["is_real"], _ = inception_score(head_probabilities(head, real), splits)
        res["is_num_classes"] = len(np.unique(labels))
    if "is" in res:
        res["is_splits"] = splits
    return res


class UserClassifier:
    """A user's image classifier for the Inception Score: a TorchScript module taking
    (N, 3, 299, 299) floats in [-1, 1] (bilinear resize, as the IS Inception) to (N, C) logits,
    or a pytorch-fid ``.pth`` (the TF Inception's own 1008 logits, the original IS network)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path, self.device = Path(path), device
        if not self.path.is_file():
            raise MetricError(f"IS classifier {self.path} does not exist")
        self.net: Any
        if self.path.suffix == ".pth":
            self.net = load_fid_weights(self.path).to(device).logits  # 299 px, [-1, 1] input
            return
        try:
            self.net = torch.jit.load(str(self.path), map_location=device).eval()
        except (RuntimeError, ValueError) as exc:
            raise MetricError(f"cannot load the IS classifier {self.path}: {exc}") from exc

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch: int = GEN_BATCH) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, C) softmax probabilities."""

        out = []
        for s in range(0, len(images), batch):
            logits = self.net(preprocess(torch.from_numpy(images[s : s + batch]), self.device))
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                raise MetricError(f"{self.path} must return (N, C) logits")
            out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        return np.concatenate(out)


def _own_matcher(sampler: Sampler) -> Any:
    """The generator's text encoder when it is a trained text-image model (it has an image side
    for R-precision), else None."""

    return sampler.encoder if isinstance(sampler.encoder, TrainedTextEncoder) else None


def _r_precision(
    enc: Any,
    captions: list[str],
    fake: np.ndarray,
    real: np.ndarray,
    test_ds: Any,
    seed: int,
) -> dict[str, Any]:
    """AttnGAN's R-precision of the generated images (each against its caption and 99 others),
    with real test images and their first captions under the same model (a
    ``TrainedTextEncoder``) for scale."""

    where = str(enc.path) if enc.path is not None else "the model's own (embedded) encoder"
    out: dict[str, Any] = {"r_precision_model": where}
    txt = enc.encode(captions).double().numpy()
    out["r_precision"], out["r_precision_std"] = r_precision(
        enc.encode_images(fake).double().numpy(), txt, seed=seed
    )
    firsts = [caps[0] for caps in test_ds.image_captions()]
    out["r_precision_real"], _ = r_precision(
        enc.encode_images(real).double().numpy(), enc.encode(firsts).double().numpy(), seed=seed
    )
    return out


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


def _stage_tiles(stages: list[torch.Tensor], size: int) -> list[np.ndarray]:
    """Per sample, its stages side by side (each resized to ``size``), as one uint8 strip."""

    cols = [to_uint8(resize_to(s, size)) for s in stages]  # each (B, S, S, 3)
    return [np.concatenate([c[i] for c in cols], axis=1) for i in range(len(cols[0]))]


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
    captions: list[str],
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


@torch.no_grad()
def _diversity(
    sampler: Sampler, emb: torch.Tensor, net: torch.nn.Module, seed: int, ca_noise: bool = True
) -> float:
    """Mean pairwise L2 distance in feature space between samples of the same caption
    (``ca_noise=False``: CA mean only, the ablation)."""
    n = min(DIVERSITY_CAPTIONS, len(emb))
    imgs = sampler.generate(
        emb[:n], seed=seed + 10_000, num_images=DIVERSITY_SAMPLES, ca_noise=ca_noise
    )[-1]
    feats = net(imgs).double().reshape(n, DIVERSITY_SAMPLES, -1)
    d = torch.cdist(feats, feats)  # (n, k, k)
    k = DIVERSITY_SAMPLES
    return float(d.sum() / (n * k * (k - 1)))


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
