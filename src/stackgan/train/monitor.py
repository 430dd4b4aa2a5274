"""Metrics during training, and the best model so far.

Every ``train.metric_ticks`` ticks the EMA generator is scored through the metric registry
(:mod:`stackgan.metrics.registry`, the path ``stackgan eval`` takes too) with each metric of
``train.metrics`` (names with optional sample counts, e.g. ``fid2k``; without a count,
``train.metric_samples`` test captions). Each result is appended to
``run_dir/metric-<name>.jsonl``. When ``train.metrics`` is empty, the dataset judge's
``consistency`` is measured where the data has a judge (``shapes``: palette statistics, a second
or two). The deprecated ``train.metric_fid: true`` puts ``fid`` first. The first metric is the
one the best model follows (in its registered direction: FID lower, consistency higher); when
it improves, the generator is exported as ``model-best.safetensors``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stackgan.config import ExperimentConfig
from stackgan.metrics.features import InceptionFeatures
from stackgan.metrics.judges import judge_for
from stackgan.metrics.options import MetricOptions, parse_metric_name
from stackgan.metrics.registry import calc_metric, headline, metric_spec, report_metric
from stackgan.sampling import Text2ImageSampler
from stackgan.text.encoders import build_encoder

logger = logging.getLogger(__name__)


def metric_names(cfg: ExperimentConfig) -> list[str]:
    """The metrics a run measures at its metric ticks, the one model-best follows first."""
    tc = cfg.train
    names = list(tc.metrics)
    if not names and cfg.model.conditional and judge_for(cfg.data.root) is not None:
        names = ["consistency"]
    if tc.metric_fid and not any(parse_metric_name(n)[0] == "fid" for n in names):
        logger.warning("train.metric_fid is deprecated: use train.metrics: [fid, ...]")
        names.insert(0, "fid")
    return names


class MetricMonitor:
    """Scores ``g_ema`` with the run's metrics; remembers the best score."""

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
        self.names = metric_names(cfg)
        self.specs = [metric_spec(n) for n in self.names]  # an unknown name fails here
        self.best: float | None = None
        self._encoder: Any = encoder
        self._opts: MetricOptions | None = None

    @property
    def active(self) -> bool:
        return bool(self.names)

    def _options(self, g_ema: nn.Module) -> MetricOptions:
        if self._opts is None:
            if self._encoder is None and self.cfg.model.conditional:
                self._encoder = build_encoder(
                    self.cfg.text.encoder,
                    device=self.device,
                    embeddings_file=self.cfg.text.embeddings_file,
                )
            sampler = Text2ImageSampler(g_ema, self.cfg, self._encoder, self.device)
            features = any(spec.features for _, _, spec in self.specs)
            self._opts = MetricOptions(
                sampler,
                self.cfg.data.root,
                num_samples=self.cfg.train.metric_samples,
                detector=InceptionFeatures(device=self.device) if features else None,
            )
        self._opts.generated.clear()  # the weights moved since the last measurement
        return self._opts

    @torch.no_grad()
    def __call__(self, g_ema: nn.Module, step: int = 0) -> dict[str, float]:
        """The numeric results of ``g_ema`` now, with ``is_best``. ``stats.jsonl`` keeps the
        consistency names short (``consistency_object``), as runs have logged them; the
        metric files carry the sample count."""
        opts = self._options(g_ema)
        out: dict[str, float] = {}
        score = 0.0
        for i, name in enumerate(self.names):
            result = calc_metric(name, opts)
            if self.run_dir is not None:
                report_metric(result, self.run_dir, step=step)
            if i == 0:
                score = headline(result)
            n = result["num_samples"]
            for k, v in result["results"].items():
                if isinstance(v, int | float):
                    out[_short(k, n)] = float(v)
        out["is_best"] = float(self.best is None or score > self.best)
        if out["is_best"]:
            self.best = score
        return out

    def _kind(self) -> str:
        """What the score measures (the first metric and its sample count): scores of
        different kinds are not compared."""
        base, count, spec = self.specs[0]
        num = count if count is not None else spec.default_count
        return f"{base}{num if num is not None else self.cfg.train.metric_samples}"

    def best_state(self) -> dict[str, Any] | None:
        """The best score for a checkpoint (None before the first measurement)."""
        return None if self.best is None else {"score": self.best, "kind": self._kind()}

    def restore_best(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's best score, if it measured the same thing; otherwise
        the first measurement after the resume starts afresh."""
        if self.names and state.get("kind") == self._kind():
            self.best = float(state["score"])
        else:
            logger.info(
                "training metric changed (%s -> %s): best score restarts",
                state.get("kind"),
                self._kind() if self.names else None,
            )


def _short(key: str, n: int) -> str:
    """``consistency256_object`` -> ``consistency_object`` (the names runs have logged)."""
    stem = f"consistency{n}"
    return "consistency" + key[len(stem) :] if key.startswith(stem) else key
