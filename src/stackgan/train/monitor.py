"""Metrics during training, and the best model so far.

Every ``train.metric_ticks`` ticks the EMA generator is scored on the first
``train.metric_samples`` test captions: text-image consistency on ``shapes`` (palette
statistics, a second or two) and, with ``train.metric_fid``, a small-sample FID against the
real test images (Inception, real features cached). The monitored score is FID when computed
(lower is better), else the mean of the two consistency accuracies (higher is better); when it
improves, the generator is exported as ``model-best.safetensors``. The same functions run in
``stackgan eval``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.data.shapes import is_shapes_root
from stackgan.metrics.consistency import evaluate_sampler
from stackgan.metrics.features import InceptionFeatures, extract_features
from stackgan.metrics.fid import fid_from_features
from stackgan.metrics.real import dataset_features
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

logger = logging.getLogger(__name__)


class MetricMonitor:
    """Scores ``g_ema`` on test captions; remembers the best score."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device, encoder: Any = None) -> None:
        """``encoder``: the run's text encoder when it already has one (else built when first
        needed, from ``cfg.text``)."""
        self.cfg = cfg
        self.device = device

        self.shapes = is_shapes_root(cfg.data.root)
        self.best: float | None = None
        self._encoder: Any = encoder
        self._net: Any = None
        self._real: np.ndarray | None = None
        self._captions: list[str] = []  # FID captions, drawn once with the real features

    @property
    def active(self) -> bool:
        return self.cfg.model.conditional and (self.shapes or self.cfg.train.metric_fid)

    def _sampler(self, g_ema: nn.Module) -> Any:

        if self._encoder is None:
            self._encoder = build_encoder(
                self.cfg.text.encoder,
                device=self.device,
                embeddings_file=self.cfg.text.embeddings_file,
            )
        return Text2ImageSampler(g_ema, self.cfg, self._encoder, self.device)

    @torch.no_grad()
    def __call__(self, g_ema: nn.Module) -> dict[str, float]:
        """Metrics of ``g_ema`` now, with ``score`` (higher is better) and ``is_best``."""

        n, out, score = self.cfg.train.metric_samples, {}, 0.0
        sampler = self._sampler(g_ema)
        if self.shapes:
            res = evaluate_sampler(sampler, self.cfg.data.root, num=n, progress=False)
            out["consistency_object"] = float(res["object_color_acc"])
            out["consistency_background"] = float(res["background_acc"])
            for size, acc in res["object_color_acc_by_size"].items():
                out[f"consistency_object_{size}"] = float(acc)
            score = (out["consistency_object"] + out["consistency_background"]) / 2
        if self.cfg.train.metric_fid:
            out[f"fid{n}"] = self._fid(sampler, n)
            score = -out[f"fid{n}"]
        out["is_best"] = float(self.best is None or score > self.best)
        if out["is_best"]:
            self.best = score
        return out

    def _kind(self) -> str:
        """What the score measures: scores of different kinds are not compared."""
        t = self.cfg.train
        return f"fid{t.metric_samples}" if t.metric_fid else f"consistency{t.metric_samples}"

    def best_state(self) -> dict[str, Any] | None:
        """The best score for a checkpoint (None before the first measurement)."""
        return None if self.best is None else {"score": self.best, "kind": self._kind()}

    def restore_best(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's best score, if it measured the same thing; otherwise
        the first measurement after the resume starts afresh."""
        if state.get("kind") == self._kind():
            self.best = float(state["score"])
        else:
            logger.info(
                "training metric changed (%s -> %s): best score restarts",
                state.get("kind"),
                self._kind(),
            )

    def _fid(self, sampler: Any, n: int) -> float:

        if self._net is None:
            self._net = InceptionFeatures(device=self.device)
            self._real, test_ds = dataset_features(
                self.cfg.data.root, "test", sampler.resolution, self._net, progress=False
            )
            rng = np.random.default_rng(0)
            firsts = [caps[0] for caps in test_ds.image_captions()]
            self._captions = [firsts[i] for i in rng.permutation(len(test_ds))[:n]]
        emb = sampler.encode_text(self._captions)
        batches = (sampler.generate(emb[s : s + 50], seed=s)[-1] for s in range(0, len(emb), 50))
        fake = extract_features(self._net, batches, len(emb), progress=False)
        assert self._real is not None
        return fid_from_features(self._real, fake)
