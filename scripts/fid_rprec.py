"""FID and R-precision of a model under several text-image matchers, from one generation pass.

``stackgan eval`` takes one matcher; issue 33 wants R-precision twice (the model's own encoder
and an independent matcher never used in training). This script draws the same captions, seed
and images as ``stackgan eval --num-samples N`` (the metric registry's FID path), so its FID is
eval's, and scores the same generated pool3 features under the model's own encoder and each
``--matcher``, and gives the second distance (``fd_effnet``: the Fréchet distance under
EfficientNet-Lite0 instead of Inception) beside FID. It skips IS, diversity and the figures,
which cost as much again on a CPU.

    python scripts/fid_rprec.py --model runs/s2-sr/model.safetensors \
        --data ../shared/data/birds-cub50 --num-samples 2000 \
        --matcher data/birds-matcher-indep.safetensors --out eval/s2-sr.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from stackgan.metrics.base import MetricUnavailableError
from stackgan.metrics.features import feature_network
from stackgan.metrics.options import MetricOptions, metric_captions
from stackgan.metrics.registry import calc_metric
from stackgan.sampling import Text2ImageSampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a bundled model's name or an export")
    ap.add_argument("--data", required=True)
    ap.add_argument("--num-samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--matcher", action="append", default=[], help="repeatable")
    ap.add_argument("--out", required=True, help="a JSON file")
    ap.add_argument(
        "--resolution", type=int, default=0, help="score this stage (e.g. 64); 0: the last"
    )
    args = ap.parse_args()

    t0 = time.time()
    sampler = Text2ImageSampler.from_pretrained(args.model)
    if args.resolution:
        sampler = sampler.up_to(args.resolution)
    opts = MetricOptions(
        sampler,
        args.data,
        "test",
        args.num_samples,
        args.seed,
        progress=True,
        detector=feature_network(None, "cpu"),
    )
    captions, _ = metric_captions(opts)
    res = {
        "model": args.model,
        "resolution": sampler.resolution,
        "num_samples": len(captions),
        **calc_metric("fid", opts)["results"],
        **calc_metric("fd_effnet", opts)["results"],  # the second distance
    }
    n = len(captions)
    # "" : the model's own encoder (skipped unless it is a trained text-image model); the
    # registry's r_precision reuses the generation above (the caches are shared)
    for name, matcher in [("own", ""), *((m, m) for m in args.matcher)]:
        try:
            r = calc_metric("r_precision", dataclasses.replace(opts, matcher=matcher))["results"]
        except MetricUnavailableError:
            continue
        res[f"r_precision[{name}]"] = [r[f"r_precision{n}"], r[f"r_precision{n}_std"]]
        res[f"r_precision_real[{name}]"] = r["r_precision_real"]
    res["seconds"] = round(time.time() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
