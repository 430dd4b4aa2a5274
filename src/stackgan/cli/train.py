"""``stackgan train``: train a stage, resume or fine-tune a run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value with a dotted key, e.g. --set optim.g_lr=1e-4.",
)
@click.option(
    "--outdir",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Parent folder of the numbered run directories.",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    default=None,
    help="Training checkpoint to continue from (e.g. RUN/checkpoint-latest.pt).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write into this folder instead of a new numbered one (resume uses it).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="With --run-dir: start afresh in a folder that holds an earlier run, deleting its "
    "checkpoints, exports, stats and samples (without it such a folder is refused).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the full resolved config and exit (a run writes it to RUN_DIR/config.yaml).",
)
def train(
    config: str,
    overrides: tuple[str, ...],
    outdir: str,
    resume: str | None,
    run_dir: str | None,
    overwrite: bool,
    dry_run: bool,
) -> None:
    """Train a StackGAN stage (on several processes: torchrun --nproc_per_node N -m stackgan train).

    The data, the Stage-I model and the text-encoder files are checked before the run folder is
    created, so a mistake leaves no folder behind.

    \b
    Examples:
      stackgan train configs/v1_shapes_stage1.yaml --run-dir runs/shapes-s1
      stackgan train configs/v1_shapes_stage2.yaml --run-dir runs/shapes-s2 \\
          --set model.stage1_checkpoint=runs/shapes-s1/model.safetensors
      stackgan train configs/v1_shapes_stage1.yaml --set train.total_iters=200 --dry-run
      stackgan train configs/v1_shapes_stage1.yaml --resume runs/shapes-s1/checkpoint-latest.pt
    """
    from stackgan.config import load_config
    from stackgan.train import make_run_dir
    from stackgan.train import train as run_training
    from stackgan.train.preflight import preflight, summary
    from stackgan.utils.distributed import broadcast_text, init_distributed
    from stackgan.utils.runtime import resolve_device

    cfg = load_config(config, overrides)
    if dry_run:  # the config alone: no device, no process group
        click.echo(cfg.to_yaml())
        return
    device = resolve_device(cfg.train.device)  # (a device this machine lacks: an error here)
    found = preflight(cfg, resume)  # before any folder exists: a mistake leaves none behind
    info = init_distributed(device.type)  # under torchrun
    if info.is_main:
        click.echo("\n".join(summary(cfg, config, found)))
    if run_dir is not None:
        rd = Path(run_dir)
    elif resume is not None:
        rd = Path(resume).parent  # continue in the run's own folder
    else:  # rank 0 numbers the run; the other ranks of a torchrun write into the same one
        rd = Path(broadcast_text(str(make_run_dir(outdir, cfg)) if info.is_main else None, info))
    if info.is_main:
        click.echo(f"run directory: {rd} (full config: {rd / 'config.yaml'})")
    export = run_training(cfg, rd, resume=resume, overwrite=overwrite)
    if info.is_main:
        click.echo(f"done: inference model at {export}")
