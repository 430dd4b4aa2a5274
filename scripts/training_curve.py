"""Plot a training run's metric against the CPU-hours spent in training iterations.

Reads ``stats.jsonl`` of one or more run folders (a run resumed across sessions is one folder;
chained runs, e.g. a fine-tuning that started from another run's export, are given in order with
--offset-hours for the compute before the first) and draws each ``metric/<name>`` logged on a
tick against ``train_seconds`` / 3600. Needs matplotlib (``pip install 'stackgan[plot]'``).

Example:
  python scripts/training_curve.py runs/birds-long --metric fid512 --offset-hours 1.5 \\
      --label "birds Stage-I" --out docs/images/birds-fid-curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_curve(run: Path, metric: str) -> list[tuple[float, float, int]]:
    """(training hours, value, step) for each tick of ``run`` that logged ``metric/<metric>``;
    a resumed run's repeated steps keep their last record."""
    key = f"metric/{metric}"
    points: dict[int, tuple[float, float, int]] = {}
    for line in (run / "stats.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if key in rec and rec[key] is not None:
            points[rec["step"]] = (rec["train_seconds"] / 3600, float(rec[key]), rec["step"])
    return sorted(points.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, in training order")
    ap.add_argument("--metric", default="fid512", help="metric name in stats.jsonl (metric/NAME)")
    ap.add_argument("--offset-hours", type=float, default=0.0, help="hours before the first run")
    ap.add_argument("--label", default="", help="legend label")
    ap.add_argument("--final", type=float, default=None, help="a final 2,000-sample FID to mark")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = [], []
    offset = args.offset_hours
    for run in args.runs:
        curve = read_curve(run, args.metric)
        if not curve:
            raise SystemExit(f"{run}: no metric/{args.metric} in stats.jsonl")
        xs += [offset + h for h, _, _ in curve]
        ys += [v for _, v, _ in curve]
        offset = xs[-1]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot(xs, ys, marker="o", markersize=3, label=args.label or args.metric)
    if args.final is not None:
        ax.scatter([xs[-1]], [args.final], color="C3", zorder=3, label="2,000-sample FID (eval)")
    ax.set_xlabel("CPU-hours of training (2 cores)")
    ax.set_ylabel(args.metric.upper())
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(xs)} points)")


if __name__ == "__main__":
    main()
