"""Training-step speed of StackGAN v1 and v2 under different numerics, as ratios to eager fp32.

Times the networks' part of what `stackgan train` runs per iteration,
``stackgan.train.iteration.train_step`` (G's images once, the D step on the three pairs for
every discriminator, the G step with the discriminators frozen, the EMA), on a state built
through the library (``build_state``) from a config of the CPU-sized `shapes` preset widths
and, with --paper, the paper's widths; the inputs are random (no data loading). Every figure
is a ratio against the fp32 / contiguous baseline measured in the same run on the same machine.

    python benchmarks/bench_train_step.py                # shapes widths, CPU or GPU
    python benchmarks/bench_train_step.py --paper --device cuda --compile
    python benchmarks/bench_train_step.py --match --only 1   # + the matching loss on G
    python benchmarks/bench_train_step.py --config configs/v1_birds_stage1_cpu.yaml \
        --set model.d_type=projected --batch 32,64 --compile   # a preset as it trains
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch

from stackgan.config import load_config
from stackgan.models.registry import build_discriminators, build_generator, image_sizes
from stackgan.train.iteration import Runtime, StepInputs, train_step
from stackgan.train.matching import ImageMatcher
from stackgan.train.state import TrainState, build_state, compile_phases
from stackgan.utils.distributed import DistInfo
from stackgan.utils.runtime import autocast_factory

# configs/v1_shapes_stage{1,2}.yaml and configs/v2_shapes_3branch.yaml; the papers' widths
SHAPES = {"ngf": 32, "ndf": 32, "ngf2": 32, "ndf2": 16, "res": 2, "v2_ngf": 16, "v2_ndf": 16}
PAPER = {"ngf": 128, "ndf": 64, "ngf2": 128, "ndf2": 64, "res": 4, "v2_ngf": 64, "v2_ndf": 64}
SHAPES_V2_RES, PAPER_V2_RES = 1, 2


def overrides(stage: str, w: dict[str, int], paper: bool, amp: str, match: bool) -> list[str]:
    """The config of "1", "2" (v1 stages) or "v2" (3 branches) at widths ``w`` (MiniLM text,
    384-d; N_z 100, N_g 128)."""
    over = {"text.encoder": "minilm", "text.dim": 384, "model.z_dim": 100, "model.cond_dim": 128}
    over |= {"model.disc_text_dim": 128, "model.stage1_img_size": 64, "train.amp": amp}
    if stage == "v2":
        res = PAPER_V2_RES if paper else SHAPES_V2_RES
        over |= {"model.version": "v2", "model.num_branches": 3, "model.num_res_blocks": res}
        over |= {"model.ngf": w["v2_ngf"], "model.ndf": w["v2_ndf"]}
    else:
        over |= {"model.version": "v1", "model.stage": int(stage), "model.ngf": w["ngf"]}
        over |= {"model.ndf": w["ndf"], "model.ngf2": w["ngf2"], "model.ndf2": w["ndf2"]}
        over |= {"model.num_res_blocks": w["res"], "model.stage2_img_size": 256}
    if match:
        over["loss.match_weight"] = 1.0
    return [f"{k}={v}" for k, v in over.items()]


def build(
    over: list[str], device: torch.device, channels_last: bool, amp: str, config: str | None = None
) -> tuple[TrainState, Runtime, list[int]]:
    """The training state (networks, optimisers, scalers) ``stackgan train`` builds for this
    config (a v1 Stage-II's Stage-I freshly initialised instead of loaded), its runtime and
    the discriminators' sizes."""
    cfg = load_config(config, over)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = build_generator(cfg).to(device, memory_format=fmt).train()
    ds = [d.to(device, memory_format=fmt).train() for d in build_discriminators(cfg)]
    state = build_state(cfg, g, copy.deepcopy(g).eval().requires_grad_(False), ds, device)
    rt = Runtime(device, autocast_factory(device, amp), fmt, None, DistInfo())
    return state, rt, image_sizes(cfg)


def time_step(over, batch, device, amp, channels_last, compile_, iters, warmup, config=None):
    """Seconds per training iteration of the config ``over`` (on the preset ``config`` when
    given), the matching loss on G included when the config has one."""
    torch.manual_seed(0)
    cfg = load_config(config, over)
    state, rt, sizes = build(over, device, channels_last, amp, config)
    dim = cfg.text.dim
    matcher = None
    if cfg.loss.match_weight > 0:
        matcher = ImageMatcher(dim).to(device).eval().requires_grad_(False)
    if compile_:
        compile_phases(state, "default")
    t = torch.randn(batch, dim, device=device)
    inputs = StepInputs(
        reals=[
            torch.rand(batch, 3, s, s, device=device).contiguous(memory_format=rt.memory_format)
            for s in sizes
        ],
        z=torch.randn(batch, cfg.model.z_dim, device=device),
        text=t,
        wrong=t.roll(1, 0),
    )

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup + iters):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        train_step(cfg, state, inputs, matcher, rt)
        state.step += 1
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
    ap.add_argument("--config", help="time this preset (its widths, D and losses) instead")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE on --config")
    ap.add_argument("--batch", default="", help="with --config: comma list (default: its own)")
    args = ap.parse_args()
    if args.config:
        preset_main(args)
        return
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
            over = overrides(stage, widths, args.paper, amp, match)
            s = time_step(over, batch, device, amp, cl, comp, args.iters, args.warmup)
            base = base or s
            print(
                f"  {name:36s} {s * 1000:9.1f} ms/it   speed-up x{base / s:5.2f}   "
                f"{batch / s:8.1f} img/s"
            )


def preset_main(args: argparse.Namespace) -> None:
    """Time one preset as it trains: precisions, torch.compile and batch sizes, each as a
    ratio of images per second against fp32 channels_last at the preset's own batch."""
    device = torch.device(args.device)
    cfg = load_config(args.config, args.set)
    batches = [int(b) for b in args.batch.split(",")] if args.batch else [cfg.train.batch_size]
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"preset: {args.config} {' '.join(args.set)}")
    variants = [
        ("fp32 channels_last (baseline)", "off", False),
        ("bf16 channels_last", "bf16", False),
    ]
    if args.compile:
        variants += [("fp32 + compile", "off", True), ("bf16 + compile", "bf16", True)]
    base = None
    for batch in batches:
        print(f"\nbatch {batch}:")
        for name, amp, comp in variants:
            over = [*args.set, f"train.amp={amp}"]
            s = time_step(
                over, batch, device, amp, True, comp, args.iters, args.warmup, args.config
            )
            ips = batch / s
            base = base or ips
            print(f"  {name:32s} {s * 1000:9.1f} ms/it  {ips:7.1f} img/s  x{ips / base:5.2f}")


if __name__ == "__main__":
    main()
