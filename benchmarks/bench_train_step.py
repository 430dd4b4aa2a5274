"""Training-step speed of StackGAN v1 and v2 under different numerics, as ratios to eager fp32.

Measures one full iteration (G forward, D step on the three pairs for every discriminator, G step)
on random data, for the CPU-sized `shapes` preset widths and, with --paper, the paper's widths.
Every figure is a ratio against the fp32 / contiguous baseline measured in the same run on the
same machine.

    python benchmarks/bench_train_step.py                # shapes widths, CPU or GPU
    python benchmarks/bench_train_step.py --paper --device cuda --compile
    python benchmarks/bench_train_step.py --match --only 1   # + the matching loss on G
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch

from stackgan.models.discriminator import Discriminator
from stackgan.models.v1 import Stage1Generator, Stage2Generator
from stackgan.models.v2 import TreeGenerator
from stackgan.train.matching import ImageMatcher
from stackgan.train.steps import d_step, g_step
from stackgan.utils.runtime import autocast_factory

# configs/v1_shapes_stage{1,2}.yaml and configs/v2_shapes_3branch.yaml; the papers' widths
SHAPES = {"ngf": 32, "ndf": 32, "ngf2": 32, "ndf2": 16, "res": 2, "v2_ngf": 16, "v2_ndf": 16}
PAPER = {"ngf": 128, "ndf": 64, "ngf2": 128, "ndf2": 64, "res": 4, "v2_ngf": 64, "v2_ndf": 64}
SHAPES_V2_RES, PAPER_V2_RES = 1, 2


def build(stage: str, w: dict[str, int], paper: bool, text_dim: int = 384):
    """(generator, discriminators, their sizes) for "1", "2" (v1 stages) or "v2" (3 branches)."""
    if stage == "v2":
        res = PAPER_V2_RES if paper else SHAPES_V2_RES
        g = TreeGenerator(text_dim, 100, 128, w["v2_ngf"], 3, res, 64)
        sizes = [64, 128, 256]
        return g, [Discriminator(s, text_dim, w["v2_ndf"], 128, True, 3) for s in sizes], sizes
    g1 = Stage1Generator(text_dim, 100, 128, w["ngf"], 64)
    if stage == "1":
        return g1, [Discriminator(64, text_dim, w["ndf"], 128)], [64]
    g2 = Stage2Generator(g1, 128, w["ngf2"], w["res"], 256)
    return g2, [Discriminator(256, text_dim, w["ndf2"], 128, uncond=True)], [256]


def time_step(
    stage, widths, paper, batch, device, amp, channels_last, compile_, iters, warmup, match=False
):
    torch.manual_seed(0)
    g, ds, sizes = build(stage, widths, paper)
    matcher = ImageMatcher(384).to(device).eval().requires_grad_(False) if match else None
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g.to(device, memory_format=fmt).train()
    for d in ds:
        d.to(device, memory_format=fmt).train()
    if compile_:
        g = torch.compile(g)
        ds = [torch.compile(d) for d in ds]
    go = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], 2e-4, betas=(0.5, 0.999))
    dos = [torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999)) for d in ds]
    ac = autocast_factory(device, amp) if amp != "off" else contextlib.nullcontext
    z = torch.randn(batch, 100, device=device)
    t = torch.randn(batch, 384, device=device)
    reals = [torch.rand(batch, 3, s, s, device=device).contiguous(memory_format=fmt) for s in sizes]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup + iters):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        with ac():
            out = g(z, t)
        for d, do, real, fake in zip(ds, dos, reals, out.images[-len(ds) :]):
            d_step(d, do, real, fake, t, t.roll(1, 0), autocast=ac)
        g_step(g, ds, go, out, t, autocast=ac, matcher=matcher, match_weight=1.0)
    sync()
    return (time.perf_counter() - t0) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--paper", action="store_true", help="paper widths instead of shapes widths")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="", help="comma list of 1, 2, v2 (default: all)")
    ap.add_argument("--match", action="store_true", help="also time the matching loss on G")
    args = ap.parse_args()
    device = torch.device(args.device)
    widths = PAPER if args.paper else SHAPES
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(
        f"machine: {platform.processor() or platform.machine()} {gpu}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"widths: {'paper' if args.paper else 'shapes preset'} {widths}")
    variants = [
        ("fp32 NCHW (baseline)", "off", False, False, False),
        ("fp32 channels_last", "off", True, False, False),
        ("bf16 autocast channels_last", "bf16", True, False, False),
    ]
    if args.compile:
        variants.append(("bf16 channels_last + compile", "bf16", True, True, False))
    if args.match:
        variants.append(("fp32 channels_last + matching loss", "off", True, False, True))
    runs = [("1", 64, "v1 Stage-I"), ("2", 16, "v1 Stage-II"), ("v2", 24, "v2 3-branch tree")]
    for stage, batch, label in runs:
        if args.only and stage not in args.only.split(","):
            continue
        base = None
        print(f"\n{label} step, batch {batch}:")
        for name, amp, cl, comp, match in variants:
            s = time_step(
                stage,
                widths,
                args.paper,
                batch,
                device,
                amp,
                cl,
                comp,
                args.iters,
                args.warmup,
                match,
            )
            base = base or s
            print(
                f"  {name:36s} {s * 1000:9.1f} ms/it   speed-up x{base / s:5.2f}   "
                f"{batch / s:8.1f} img/s"
            )


if __name__ == "__main__":
    main()
