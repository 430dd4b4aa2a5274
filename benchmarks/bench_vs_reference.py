"""This project's training iteration against one that runs the way the original code runs.

The original StackGAN-Pytorch / StackGAN-v2 trainers (read from hanzhanggit/StackGAN-Pytorch
``code/trainer.py`` and StackGAN-v2 ``code/trainer.py``) run every step eagerly in fp32 with
NCHW tensors; Adam(2e-4, betas (0.5, 0.999)) per network, stepping parameter by parameter
(PyTorch 0.4's Adam; ``foreach=False`` here); D's image code of the real batch computed once
and scored against the right text and, shifted by one, the wrong text, plus the fakes; the G
step backpropagates through D with D's parameters still requiring gradients (they are computed
and thrown away at the next ``zero_grad``); and every step reads its losses on the host
(``errD.data[0]`` and friends) for logging, six host synchronisations.

Both sides use this project's networks (same widths, batch and losses: the matching-aware D
loss, the non-saturating G loss and the KL term), so the ratio is the implementation, not the
architecture. "ours" is the project's own step, the one `stackgan train` runs
(``stackgan.train.iteration.train_step`` on a state built by ``stackgan.train.state.build_state``:
D frozen during the G step, fused Adam on CUDA, the EMA, losses read once per tick) in a chosen
precision and memory format.
The two are timed interleaved, iteration by iteration, after a warm-up; medians are printed,
with each step's FLOPs (``torch.utils.flop_counter``) as a fraction of the machine's measured
dense matmul peak (a 4096x4096 matmul, fp32 and bf16, timed in the same run).

    python benchmarks/bench_vs_reference.py --stage 1 --batch 64            # paper widths
    python benchmarks/bench_vs_reference.py --stage 2 --batch 16 --iters 3
    python benchmarks/bench_vs_reference.py --device cuda --stage 1 --batch 64 --iters 50
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from stackgan.config import ExperimentConfig, load_config
from stackgan.losses import kl_divergence
from stackgan.models.discriminator import Discriminator
from stackgan.models.registry import build_discriminators, build_generator, image_sizes
from stackgan.models.v1 import Stage1Generator, Stage2Generator
from stackgan.train.iteration import Runtime, StepInputs, train_step
from stackgan.train.state import TrainState, build_state, compile_phases
from stackgan.utils.distributed import DistInfo
from stackgan.utils.runtime import autocast_factory

TEXT_DIM, Z_DIM, COND_DIM = 1024, 100, 128  # the papers' char-CNN-RNN size, N_z, N_g
PAPER = {"ngf": 128, "ndf": 64, "ngf2": 128, "ndf2": 64, "res": 4}


def build(stage: int, widths: dict[str, int]) -> tuple[torch.nn.Module, Discriminator, int]:
    g1 = Stage1Generator(TEXT_DIM, Z_DIM, COND_DIM, widths["ngf"], 64)
    if stage == 1:
        return g1, Discriminator(64, TEXT_DIM, widths["ndf"]), 64
    g2 = Stage2Generator(g1, COND_DIM, widths["ngf2"], widths["res"], 256)
    return g2, Discriminator(256, TEXT_DIM, widths["ndf2"], uncond=True), 256


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def reference_step(
    g: torch.nn.Module,
    d: Discriminator,
    g_opt: torch.optim.Optimizer,
    d_opt: torch.optim.Optimizer,
    z: torch.Tensor,
    text: torch.Tensor,
    real: torch.Tensor,
) -> list[float]:
    """One iteration the way the original trainers run it (see the module docstring)."""
    out = g(z, text)
    fake = out.images[-1]
    # D: the real code once (right text; shifted by one for the wrong text), the fakes detached
    d.zero_grad()
    real_code = d.encode(real)
    fake_code = d.encode(fake.detach())
    real_l = d.cond_logits(real_code, text)
    wrong_l = d.cond_logits(real_code[:-1], text[1:])
    fake_l = d.cond_logits(fake_code, text)
    err_real, err_wrong, err_fake = _bce(real_l, 1.0), _bce(wrong_l, 0.0), _bce(fake_l, 0.0)
    err_d = err_real + 0.5 * (err_wrong + err_fake)
    if d.uncond_head is not None:  # Stage-II: the unconditional terms too
        real_u, fake_u = d.uncond_logits(real_code), d.uncond_logits(fake_code)
        assert real_u is not None and fake_u is not None
        err_d = err_d + _bce(real_u, 1.0) + _bce(fake_u, 0.0)
    err_d.backward()
    d_opt.step()
    # G: through D, whose parameters still take gradients (discarded at D's next zero_grad)
    g.zero_grad()
    code = d.encode(fake)
    err_g = _bce(d.cond_logits(code, text), 1.0)
    if d.uncond_head is not None:
        u = d.uncond_logits(code)
        assert u is not None
        err_g = err_g + _bce(u, 1.0)
    kl = kl_divergence(out.mus[-1], out.logvars[-1])
    (err_g + 2.0 * kl).backward()
    g_opt.step()
    # the per-step logging: each value read on the host
    return [float(v.item()) for v in (err_d, err_real, err_wrong, err_fake, err_g, kl)]


def ours_config(stage: int, widths: dict[str, int], amp: str) -> ExperimentConfig:
    """The config of the networks :func:`build` makes (char-CNN-RNN-sized text, as the papers),
    for the library to build them, their optimisers and its iteration from."""
    over = {"text.encoder": "precomputed", "text.dim": TEXT_DIM, "model.z_dim": Z_DIM}
    over |= {"model.cond_dim": COND_DIM, "model.stage": stage, "model.stage1_img_size": 64}
    over |= {"model.stage2_img_size": 256, "model.num_res_blocks": widths["res"]}
    over |= {f"model.{k}": v for k, v in widths.items() if k != "res"}
    over |= {"model.disc_text_dim": 128, "train.amp": amp}
    return load_config(None, [f"{k}={v}" for k, v in over.items()])


def ours_setup(
    cfg: ExperimentConfig, device: torch.device, amp: str
) -> tuple[TrainState, Runtime, int]:
    """The training state ``stackgan train`` builds for ``cfg`` (channels_last, fused Adam on
    CUDA; a Stage-II's Stage-I freshly initialised), its runtime and D's image size."""
    torch.manual_seed(0)
    fmt = torch.channels_last
    g = build_generator(cfg).to(device, memory_format=fmt).train()
    ds = [d.to(device, memory_format=fmt).train() for d in build_discriminators(cfg)]
    state = build_state(cfg, g, copy.deepcopy(g).eval().requires_grad_(False), ds, device)
    rt = Runtime(device, autocast_factory(device, amp), fmt, None, DistInfo())
    return state, rt, image_sizes(cfg)[-1]


def ours_step(
    cfg: ExperimentConfig,
    state: TrainState,
    rt: Runtime,
    z: torch.Tensor,
    text: torch.Tensor,
    real: torch.Tensor,
) -> None:
    """One iteration of this project's loop, without the data: the training loop's own
    ``train_step`` (G's images once, the D phase, the G phase with D frozen, the EMA). Losses
    stay on the device. With train.compile the phases run compiled (``compile_phases``)."""
    inputs = StepInputs(reals=[real], z=z, text=text, wrong=text.roll(1, 0))
    train_step(cfg, state, inputs, None, rt)
    state.step += 1


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    """Dense matmul FLOP/s of this machine (the best of ``reps``)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(
    stage: int,
    widths: dict[str, int],
    device: torch.device,
    channels_last: bool,
    fused: bool,
    foreach: bool | None,
):
    torch.manual_seed(0)
    g, d, size = build(stage, widths)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g.to(device, memory_format=fmt).train()
    d.to(device, memory_format=fmt).train()
    kw: dict[str, object] = {"fused": True} if fused else {"foreach": foreach}
    g_opt = torch.optim.Adam(
        [p for p in g.parameters() if p.requires_grad], 2e-4, betas=(0.5, 0.999), **kw
    )
    d_opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    return g, d, g_opt, d_opt, size, fmt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--stage", type=int, default=1, choices=(1, 2))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--amp", default="auto", help="our side's precision: auto, bf16, off, ...")
    ap.add_argument("--scale", type=int, default=1, help="divide the paper widths by this")
    ap.add_argument(
        "--compile", default="off", help="our side: off, default, reduce-overhead (CUDA graphs)"
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    widths = {k: (v if k == "res" else v // args.scale) for k, v in PAPER.items()}
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    print(f"machine: {name}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    peaks = {dt: matmul_peak(device, dt) for dt in (torch.float32, torch.bfloat16)}
    print("matmul peak: " + ", ".join(f"{dt} {p / 1e9:.0f} GFLOP/s" for dt, p in peaks.items()))
    ref = _setup(args.stage, widths, device, False, False, False)
    cfg = ours_config(args.stage, widths, args.amp)
    state, rt, _ = ours_setup(cfg, device, args.amp)
    amp = "bf16" if rt.autocast is not contextlib.nullcontext else "fp32"
    size = ref[4]
    z = torch.randn(args.batch, Z_DIM, device=device)
    text = torch.randn(args.batch, TEXT_DIM, device=device)
    real = torch.rand(args.batch, 3, size, size, device=device) * 2 - 1
    real_cl = real.contiguous(memory_format=torch.channels_last)

    def run_ref() -> None:
        reference_step(*ref[:4], z, text, real)

    def run_ours() -> None:
        ours_step(cfg, state, rt, z, text, real_cl)

    flops = {}
    for label, fn in (("reference", run_ref), ("ours", run_ours)):  # ours still eager here
        with FlopCounterMode(display=False) as fc:
            fn()
        flops[label] = fc.get_total_flops()
    if args.compile != "off":  # as train.compile: each phase's module compiled in this mode
        compile_phases(state, args.compile)
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    for i in range(args.warmup + args.iters):
        for label, fn in (("reference", run_ref), ("ours", run_ours)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if i >= args.warmup:
                times[label].append(time.perf_counter() - t0)
    print(f"v1 Stage-{'I' * args.stage} iteration, batch {args.batch}, widths {widths}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for label in ("reference", "ours"):
        peak = (
            peaks[torch.float32] if label == "reference" or amp == "fp32" else peaks[torch.bfloat16]
        )
        what = "eager fp32 NCHW" if label == "reference" else f"{amp} channels_last"
        if label == "ours" and args.compile != "off":
            what += f" compile={args.compile}"
        print(
            f"  {label:9s} ({what:22s}) {med[label] * 1000:9.1f} ms/it  "
            f"{flops[label] / 1e9:7.1f} GFLOP/it  "
            f"{flops[label] / med[label] / peak:6.1%} of the "
            f"{'fp32' if label == 'reference' else amp} matmul peak"
        )
    print(f"  speed-up of ours over the reference: x{med['reference'] / med['ours']:.2f}")


if __name__ == "__main__":
    main()
