"""Metrics during training, and the best model so far.

Every ``train.metric_ticks`` ticks the EMA generator is scored through the metric registry
(:mod:`stackgan.metrics.registry`, the path ``stackgan eval`` takes too) on
``train.metric_samples`` test captions: text-image consistency on ``shapes`` (palette
statistics, a second or two) and, with ``train.metric_fid``, FID against the real test images
(Inception, real features cached). Each result is appended to ``run_dir/metric-<name>.jsonl``.
The monitored score is FID when computed (lower is better), else the mean of the two
consistency accuracies (higher is better); when it improves, the generator is exported as
``model-best.safetensors``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.data.shapes import is_shapes_root
from stackgan.metrics.features import InceptionFeatures
from stackgan.metrics.registry import MetricOptions, calc_metric, report_metric
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

logger = logging.getLogger(__name__)


class MetricMonitor:
    """Scores ``g_ema`` on test captions; remembers the best score."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        device: torch.device,
        encoder: Any = None,
        run_dir: str | Path | None = None,
    ) -> None:
        """``encoder``: the run's text encoder when it already has one (else built when first
        needed, from ``cfg.text``); ``run_dir``: where the metric-<name>.jsonl files go."""
        self.cfg = cfg
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # the palette judge reads the caption's colours: text-conditioned models only
        self.shapes = cfg.model.conditional and is_shapes_root(cfg.data.root)
        self.best: float | None = None
        self._encoder: Any = encoder
        self._opts: MetricOptions | None = None

    @property
    def active(self) -> bool:
        return self.shapes or self.cfg.train.metric_fid

    def _options(self, g_ema: nn.Module) -> MetricOptions:
        if self._opts is None:
            if self._encoder is None and self.cfg.model.conditional:
                self._encoder = build_encoder(
                    self.cfg.text.encoder,
                    device=self.device,
                    embeddings_file=self.cfg.text.embeddings_file,
                )
            sampler = Text2ImageSampler(g_ema, self.cfg, self._encoder, self.device)
            detector = InceptionFeatures(device=self.device) if self.cfg.train.metric_fid else None
            self._opts = MetricOptions(
                sampler,
                self.cfg.data.root,
                num_samples=self.cfg.train.metric_samples,
                detector=detector,
            )
        self._opts.generated.clear()  # the weights moved since the last measurement
        return self._opts

    @torch.no_grad()
    def __call__(self, g_ema: nn.Module, step: int = 0) -> dict[str, float]:
        """Metrics of ``g_ema`` now, with ``is_best``; consistency names are kept short
        (``consistency_object``) in ``stats.jsonl``, the files carry the sample count."""
        opts = self._options(g_ema)
        out: dict[str, float] = {}
        score = 0.0
        names = (["consistency"] if self.shapes else []) + (
            ["fid"] if self.cfg.train.metric_fid else []
        )
        for name in names:
            result = calc_metric(name, opts)
            if self.run_dir is not None:
                report_metric(result, self.run_dir, step=step)
            n = result["num_samples"]
            for k, v in result["results"].items():
                out[k.replace(f"consistency{n}_", "consistency_")] = v
        if self.shapes:
            score = (out["consistency_object"] + out["consistency_background"]) / 2
        if self.cfg.train.metric_fid:
            fid_key = next(k for k in out if k.startswith("fid"))
            score = -out[fid_key]
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
