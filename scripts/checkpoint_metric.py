"""A run's own training metric on a checkpoint's training G or its EMA generator.

The metric ticks of ``stackgan train`` score ``g_ema`` only; this scores either set of weights of
a checkpoint with the same metric, captions and seed, to see what the averaging does (the
flowers tree at iteration 800: ``g_ema`` 395.8 against the training G's 189.5, before
``train.ema_rampup``). The EMA does not feed back into training, so the two are compared at
equal CPU time by construction.

    python scripts/checkpoint_metric.py runs/flowers-v2/checkpoint-latest.pt \
        --weights generator --set data.root=data/flowers-256.pack
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from stackgan.checkpoint import checkpoint_config, load_checkpoint
from stackgan.config import load_config
from stackgan.models.registry import build_generator
from stackgan.train.monitor import MetricMonitor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a run's checkpoint-*.pt")
    ap.add_argument("--weights", choices=("generator", "generator_ema"), default="generator_ema")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE on the run's config")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt, args.checkpoint)
    if args.set:  # the checkpoint's config with overrides (e.g. where its data is now)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(cfg.to_yaml())
            cfg = load_config(path, args.set)
    g = build_generator(cfg)
    g.load_state_dict(ckpt[args.weights])
    g.eval()
    res = MetricMonitor(cfg, torch.device("cpu"))(g, step=int(ckpt["step"]))
    res.pop("is_best", None)
    print(json.dumps({"step": int(ckpt["step"]), "weights": args.weights, **res}))


if __name__ == "__main__":
    main()
