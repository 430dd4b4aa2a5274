"""FID and R-precision of a model under several text-image matchers, from one generation pass.

``stackgan eval`` takes one matcher; issue 33 wants R-precision twice (the model's own encoder
and an independent matcher never used in training). This script draws the same captions, seed
and images as ``stackgan eval --num-samples N`` (the metric registry's FID path), so its FID is
eval's, and scores the same generated pool3 features under the model's own encoder and each
``--matcher``. It skips IS, diversity and the figures, which cost as much again on a CPU.

    python scripts/fid_rprec.py --model runs/s2-sr/model.safetensors \
        --data ../shared/data/birds-cub50 --num-samples 2000 \
        --matcher data/birds-matcher-indep.safetensors --out eval/s2-sr.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stackgan.metrics.evaluate import _own_matcher, _r_precision
from stackgan.metrics.features import feature_network
from stackgan.metrics.registry import MetricOptions, calc_metric, metric_captions
from stackgan.sampling import Text2ImageSampler
from stackgan.text.trainable import TrainedTextEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a bundled model's name or an export")
    ap.add_argument("--data", required=True)
    ap.add_argument("--num-samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--matcher", action="append", default=[], help="repeatable")
    ap.add_argument("--out", required=True, help="a JSON file")
    args = ap.parse_args()

    t0 = time.time()
    sampler = Text2ImageSampler.from_pretrained(args.model)
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
    }
    real, test_ds = opts.cache["real"]
    fake = opts.generated["features"]
    own = _own_matcher(sampler)
    matchers = ([("own", own)] if own is not None else []) + [
        (m, TrainedTextEncoder(m)) for m in args.matcher
    ]
    for name, enc in matchers:
        r = _r_precision(enc, captions, fake, real, test_ds, args.seed)
        res[f"r_precision[{name}]"] = [r["r_precision"], r["r_precision_std"]]
        res[f"r_precision_real[{name}]"] = r["r_precision_real"]
    res["seconds"] = round(time.time() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
