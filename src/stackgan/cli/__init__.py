"""The ``stackgan`` command line: train | sample | export | data | consistency | demo.

Every command calls the library API; none holds model logic of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from stackgan.config import ExperimentConfig

from stackgan import __version__

logger = logging.getLogger("stackgan")


class _Errors(click.Group):
    """Turn the library's own error types, bad values and file-system errors into one clean
    line instead of a traceback (``-v`` shows the traceback)."""

    def invoke(self, ctx: click.Context) -> object:
        from stackgan.train.loop import TrainingError

        try:
            return super().invoke(ctx)
        except (ValueError, OSError, TrainingError) as exc:
            # ValueError covers ConfigError, DatasetError, CheckpointError, TextEncoderError,
            # DeviceError, TextFileError; OSError the file system (a full disk, a missing or
            # unwritable path), FileExistsError (an existing run) included
            if logging.getLogger("stackgan").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _setup_console_logging(verbose: bool) -> None:
    root = logging.getLogger("stackgan")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stackgan")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """StackGAN / StackGAN++ text-to-image synthesis."""
    _setup_console_logging(verbose)


# the --model option of every command that reads an inference export
model_option = click.option(
    "--model",
    default=None,
    type=click.Path(dir_okay=False),
    help="Inference export. Default: the bundled shapes model.",
)


# ----------------------------------------------------------------------------------------------
@main.command()
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
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train(
    config: str,
    overrides: tuple[str, ...],
    outdir: str,
    resume: str | None,
    run_dir: str | None,
    overwrite: bool,
    dry_run: bool,
) -> None:
    """Train a StackGAN stage.

    \b
    Examples:
      stackgan train configs/v1_shapes_stage1.yaml
      stackgan train configs/v1_shapes_stage2.yaml \\
          --set model.stage1_checkpoint=runs/00000-v1-shapes-stage1-bs64/model.safetensors
      stackgan train configs/v1_shapes_stage1.yaml --set train.total_iters=200 --dry-run
      stackgan train configs/v1_shapes_stage1.yaml \\
          --resume runs/00000-v1-shapes-stage1-bs64/checkpoint-latest.pt
    """
    from stackgan.config import load_config
    from stackgan.train import make_run_dir
    from stackgan.train import train as run_training

    cfg = load_config(config, overrides)
    click.echo(cfg.to_yaml())
    if dry_run:
        return
    if run_dir is not None:
        rd = Path(run_dir)
    elif resume is not None:
        rd = Path(resume).parent  # continue in the run's own folder
    else:
        rd = make_run_dir(outdir, cfg)
    click.echo(f"run directory: {rd}")
    export = run_training(cfg, rd, resume=resume, overwrite=overwrite)
    click.echo(f"done: inference model at {export}")


# ----------------------------------------------------------------------------------------------
@main.command()
@click.argument("caption", nargs=-1)
@click.option(
    "--captions",
    "captions_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Text file: one caption per non-empty line.",
)
@click.option(
    "--out",
    "out_dir",
    default="samples",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder.",
)
@click.option(
    "--model",
    default=None,
    type=click.Path(dir_okay=False),
    help="Inference export (.safetensors). Default: the bundled shapes model.",
)
@click.option("--seed", default=0, show_default=True, help="Random seed for z and CA noise.")
@click.option(
    "--num",
    "num_images",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images per caption; for an unconditional (StackGAN++) model, images in all.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option(
    "--save-stages", is_flag=True, help="Also write every stage's image as DIR/stageK/NNNN.png."
)
@click.option(
    "--embeddings",
    "embeddings_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Sample from precomputed sentence vectors instead of text: the original StackGAN "
    "demo's .t7 (raw_txt + fea_txt) or an (N, D) .npy.",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images generated, written and freed at a time (bounds memory).",
)
@click.option(
    "--grid",
    "grid_max",
    default=64,
    show_default=True,
    type=click.IntRange(min=0),
    help="grid.png shows the first N images; 0 writes no grid.",
)
def sample(
    caption: tuple[str, ...],
    captions_file: str | None,
    out_dir: str,
    model: str | None,
    seed: int,
    num_images: int,
    device: str,
    save_stages: bool,
    embeddings_file: str | None,
    batch_size: int,
    grid_max: int,
) -> None:
    """Generate one image per caption: DIR/0000.png, 0001.png, ... and DIR/grid.png (the first
    64). Images are written batch by batch as they are made, so any number of captions fits in
    the memory of one batch.

    With --num K, K consecutive images per caption. An unconditional StackGAN++ model takes no
    captions and writes --num images.

    \b
    Examples:
      stackgan sample "a big red star on a sky blue background"
      stackgan sample --captions captions.txt --out out/ --seed 3
      stackgan sample --model runs/00001-.../model.safetensors "a tiny blue circle"
      stackgan sample --model runs/00004-v2-folder-3branch-uncond-bs24/model.safetensors --num 16
      stackgan sample --model birds-charcnnrnn.safetensors --embeddings caption.t7
    """
    from stackgan.sampling import Text2ImageSampler
    from stackgan.utils.textio import read_text_file

    captions = list(caption)
    if captions_file is not None:
        path = Path(captions_file)
        if not path.is_file():
            raise click.ClickException(f"captions file not found: {path}")
        captions += [ln.strip() for ln in read_text_file(path).splitlines() if ln.strip()]
    out = Path(out_dir)
    _check_out_dir(out)  # before the model loads: a bad --out fails at once
    sampler = Text2ImageSampler.from_pretrained(model, device=device)
    text_emb = None
    if embeddings_file is not None:
        text_emb = _read_embeddings(sampler, Path(embeddings_file))
    elif not sampler.conditional:
        if captions:
            raise click.UsageError("this model is unconditional: give --num N, not captions")
    elif not captions:
        raise click.UsageError("give a caption or --captions FILE")
    else:
        sampler.check_inputs(captions, num_images)
    batches = sampler.stream(
        captions or None, seed=seed, num_images=num_images, batch_size=batch_size, text_emb=text_emb
    )
    _write_samples(batches, out, sampler.resolution, save_stages, grid_max)


def _check_out_dir(out: Path) -> None:
    """Fail early, and without creating anything, when ``out`` cannot be a folder."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise click.ClickException(f"--out {out}: {p} is a file, not a folder")
            return


def _write_samples(
    batches: Any, out: Path, resolution: int, save_stages: bool, grid_max: int
) -> None:
    """The `sample` contract, written batch by batch as the images come (memory is bounded by
    the batch): OUT/0000.png, 0001.png, ..., with --save-stages OUT/stageK/NNNN.png, and
    OUT/grid.png of the first ``grid_max`` images (none when 0)."""
    import numpy as np

    from stackgan.utils.images import make_grid, save_png

    n = 0
    grid: list[np.ndarray] = []
    for batch in batches:
        out.mkdir(parents=True, exist_ok=True)
        for j, im in enumerate(batch.images):
            a = np.asarray(im)
            save_png(a, out / f"{n + j:04d}.png")
            if len(grid) < grid_max:
                grid.append(a)
        if save_stages:
            for s, imgs in enumerate(batch.stage_images, start=1):
                (out / f"stage{s}").mkdir(exist_ok=True)
                for j, im in enumerate(imgs):
                    save_png(np.asarray(im), out / f"stage{s}" / f"{n + j:04d}.png")
        n += len(batch.images)
    note = ""
    if grid:
        save_png(make_grid(np.stack(grid), nrow=min(8, len(grid))), out / "grid.png")
        note = f" and grid.png (the first {len(grid)})"
    click.echo(f"wrote {n} images ({resolution}px){note} to {out}")


def _read_embeddings(sampler: Any, path: Path) -> Any:
    """``stackgan sample --embeddings``: stored sentence vectors as an (N, D) tensor."""
    import numpy as np
    import torch

    from stackgan.text.torch7 import load_t7_embeddings

    if not path.is_file():
        raise click.ClickException(f"embeddings file not found: {path}")
    sentences: list[str] = []
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False).astype(np.float32)
        except ValueError as exc:
            raise click.ClickException(f"{path}: not a numeric .npy array ({exc})") from None
    else:
        sentences, arr = load_t7_embeddings(path)
    arr = arr.reshape(len(arr), -1)
    if not sampler.conditional or arr.shape[1] != sampler.text_dim:
        raise click.ClickException(
            f"{path} holds {arr.shape[1]}-d vectors but the model takes "
            f"{sampler.text_dim if sampler.conditional else 'no'} text input "
            f"({sampler.cfg.text.encoder})"
        )
    for i, text in enumerate(sentences):
        click.echo(f"{i:04d}: {text}")
    return torch.from_numpy(arr)


# ----------------------------------------------------------------------------------------------
@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors file."
)
@click.option("--half", is_flag=True, help="Store weights in fp16 (half the size).")
@click.option(
    "--stage1",
    "stage1",
    default=None,
    type=click.Path(dir_okay=False),
    help="v1 Stage-II only: put this Stage-I generator (an export or checkpoint) under its "
    "Stage-II, e.g. a Stage-I fine-tuned after the Stage-II was trained.",
)
def export(checkpoint: str, out: str, half: bool, stage1: str | None) -> None:
    """Export a training checkpoint's EMA generator for sampling.

    CHECKPOINT may also be an export (``model.safetensors``, ``model-best.safetensors``) to
    write again, e.g. in fp16 with --half; an encoder embedded in it is kept.

    \b
    Example:
      stackgan export runs/00001-.../checkpoint-latest.pt --out model.safetensors --half
      stackgan export runs/00001-.../model-best.safetensors --out best-fp16.safetensors --half
    """
    from stackgan.checkpoint import (
        checkpoint_config,
        embedded_text_encoder,
        export_generator,
        load_checkpoint,
        load_export,
    )

    if checkpoint.endswith(".safetensors"):
        state, cfg = load_export(checkpoint)
        encoder = embedded_text_encoder(checkpoint) if cfg.model.conditional else None
        source = f"from the export {checkpoint}"
    else:
        ckpt = load_checkpoint(checkpoint)
        cfg = checkpoint_config(ckpt, checkpoint)
        state, encoder, source = ckpt["generator_ema"], None, f"step {ckpt['step']}"
    if stage1:
        state, cfg = _with_stage1(state, cfg, stage1)
    export_generator(out, state, cfg, half=half, text_encoder=encoder)
    click.echo(f"wrote {out} ({source})")


def _with_stage1(
    state: dict[str, Any], cfg: ExperimentConfig, stage1: str
) -> tuple[dict[str, Any], ExperimentConfig]:
    """A v1 Stage-II generator state with its Stage-I weights replaced by ``stage1``'s."""
    import dataclasses

    from stackgan.train.loop import load_generator_weights

    if cfg.model.version != "v1" or cfg.model.stage != 2:
        raise click.UsageError("--stage1 needs a v1 Stage-II model")
    s1_state, s1_cfg = load_generator_weights(stage1)
    if s1_cfg.model.stage != 1 or s1_cfg.text != cfg.text:
        raise click.UsageError(f"--stage1 {stage1} is not a Stage-I model with this text config")
    new = dict(state)
    for k, v in s1_state.items():
        if f"stage1.{k}" not in new or new[f"stage1.{k}"].shape != v.shape:
            raise click.UsageError(f"--stage1 {stage1} does not match this Stage-I ({k})")
        new[f"stage1.{k}"] = v
    model = dataclasses.replace(cfg.model, stage1_checkpoint=stage1)
    return new, dataclasses.replace(cfg, model=model)


# ----------------------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Dataset tools."""


@data.command("shapes")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--num", default=10_000, show_default=True, help="Number of images.")
@click.option("--seed", default=0, show_default=True, help="Seed of attributes and splits.")
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.Choice(["32", "64", "128", "256"]),
    help="Stored resolution (area-downsampled from the 256 render).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty folder.")
def data_shapes(out: str, num: int, seed: int, size: str, overwrite: bool) -> None:
    """Render the embedded `shapes` dataset in the CUB layout.

    \b
    Example:
      stackgan data shapes --out data/shapes --num 10000 --seed 0
    """
    from stackgan.data.shapes import write_dataset

    root = write_dataset(out, num, seed=seed, size=int(size), overwrite=overwrite)
    meta = json.loads((root / "meta.json").read_text())
    click.echo(
        f"wrote {num} images to {root}: {meta['num_train']} train, {meta['num_test']} "
        f"test; held-out pairs {meta['heldout_pairs']}"
    )


@data.command("check")
@click.argument("root", type=click.Path(file_okay=False))
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cub", "flowers", "coco", "folder"]),
    help="Dataset layout; auto detects it from the folder.",
)
@click.option("--max-problems", default=50, show_default=True, help="Problems listed per split.")
def data_check(root: str, layout: str, max_problems: int) -> None:
    """Report missing, unreadable or uncaptioned images of a dataset folder, by path.

    Exits with status 1 when there is any problem.

    \b
    Examples:
      stackgan data check ../shared/data/birds-cub50
      stackgan data check ~/data/coco --layout coco
    """
    from stackgan.data.check import check_dataset

    found, reports = check_dataset(root, layout)
    click.echo(f"{root}: {found} layout")
    total = 0
    for rep in reports:
        click.echo(
            f"  {rep.split}: {rep.num_images} usable images, {rep.num_captions} captions, "
            f"{len(rep.problems)} problems"
        )
        for line in rep.problems[:max_problems]:
            click.echo(f"    {line}")
        if len(rep.problems) > max_problems:
            click.echo(f"    ... and {len(rep.problems) - max_problems} more")
        total += len(rep.problems)
    if total:
        raise SystemExit(1)
    click.echo("no problems found")


# ----------------------------------------------------------------------------------------------
@main.command()
@model_option
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(file_okay=False),
    help="A shapes dataset folder (stackgan data shapes).",
)
@click.option("--split", default="test", show_default=True)
@click.option("--num", default=0, show_default=True, help="Use the first N captions (0 = all).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the figures to this JSON file.",
)
def consistency(
    model: str | None, data_root: str, split: str, num: int, seed: int, device: str, out: str | None
) -> None:
    """Text-image consistency on shapes: object colour and background by palette statistics.

    \b
    Example:
      stackgan consistency --data data/shapes --out consistency.json
    """
    from stackgan.metrics.consistency import evaluate_sampler
    from stackgan.sampling import Text2ImageSampler

    sampler = Text2ImageSampler.from_pretrained(model, device=device)
    res = evaluate_sampler(sampler, data_root, split, num, seed)
    res["model"] = str(model or "bundled")
    text = json.dumps(res, indent=2)
    click.echo(text)
    if out:  # (a missing folder is created: the figures took minutes to compute)
        from stackgan.utils.cache import atomic_write

        atomic_write(Path(out), lambda tmp: tmp.write_text(text + "\n"))


# ----------------------------------------------------------------------------------------------
_F = TypeVar("_F", bound=Callable[..., Any])


def _optional_file(flag: str, help_text: str) -> Callable[[_F], _F]:
    """A ``--flag FILE`` option that defaults to "" (not given)."""
    return click.option(flag, default="", type=click.Path(dir_okay=False), help=help_text)


@main.command("eval")
@model_option
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset folder (its test split is the reference).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--num-samples", default=0, show_default=True, help="Captions to generate (0 = all test)."
)
@click.option(
    "--max-train",
    default=0,
    show_default=True,
    help="Real training images for the Inception-Score head (0 = all).",
)
@click.option("--split", default="test", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--history",
    default="",
    help="JSON-lines file each run is appended to. Default: OUT/../eval-history.jsonl.",
)
@click.option(
    "--screenshot",
    is_flag=True,
    help="Also open report.html in headless Chromium: OUT/report.png, and check images load.",
)
@_optional_file(
    "--matcher",
    "Trained text-image model (stackgan text-encoder train) for R-precision. Default: the "
    "generator's own text encoder when it is one.",
)
@_optional_file(
    "--is-classifier",
    "TorchScript classifier ((N,3,299,299) in [-1,1] -> logits), or a pytorch-fid .pth, for the "
    "Inception Score, instead of the dataset's pool3 head.",
)
@_optional_file(
    "--fid-weights",
    "pytorch-fid / torch-fidelity pt_inception-2015-12-05-*.pth for FID, instead of the "
    "TorchScript default_1.pt (same network).",
)
def eval_cmd(
    model: str | None,
    data_root: str,
    out_dir: str,
    num_samples: int,
    max_train: int,
    split: str,
    seed: int,
    device: str,
    history: str,
    screenshot: bool,
    matcher: str,
    is_classifier: str,
    fid_weights: str,
) -> None:
    """FID, Inception Score, diversity, R-precision (with a trained text-image model) and, on
    shapes, per-attribute consistency -> metrics.json, report.html.

    \b
    Examples:
      stackgan eval --data data/shapes --out eval/bundled
      stackgan eval --model runs/00001-.../model.safetensors --data data/shapes --out eval/run1
    """
    from stackgan.metrics.evaluate import EvalOptions, evaluate

    opts = EvalOptions(
        data_root,
        out_dir,
        model,
        split,
        num_samples,
        max_train,
        seed,
        device,
        history,
        matcher=matcher,
        is_classifier=is_classifier,
        fid_weights=fid_weights,
    )
    res = evaluate(opts)
    click.echo(json.dumps(res, indent=2))
    click.echo(f"wrote {Path(out_dir) / 'metrics.json'} and {Path(out_dir) / 'report.html'}")
    if screenshot:
        from stackgan.metrics.browser import check_report

        loaded, total = check_report(Path(out_dir) / "report.html", Path(out_dir) / "report.png")
        click.echo(f"report.png: {loaded} of {total} images decoded in headless Chromium")
        if loaded != total:
            raise click.ClickException(f"only {loaded} of {total} report images decoded")


# ----------------------------------------------------------------------------------------------
def _class_mask_option(where: str) -> Callable[[_F], _F]:
    """``--class-mask/--no-class-mask``: same-class pairs are no negatives (AttnGAN's DAMSM)."""
    return click.option(
        "--class-mask/--no-class-mask",
        default=None,
        help=f"Leave other images of the same class out of {where} (AttnGAN's DAMSM). "
        "Default: on when the data has classes, except for shapes (whose shape-colour classes "
        "do not fix the caption).",
    )


@main.group("text-encoder")
def text_encoder() -> None:
    """Train and evaluate text encoders (captions matched against image features)."""


@text_encoder.command("train")
@click.option("--data", "data_root", required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--max-train", default=0, show_default=True, help="Use the first N train images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--buckets",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=16),
    help="Rows of the hashed word/character-n-gram table (128 floats each, most of the "
    "file's size); a small vocabulary such as shapes' needs a few thousand.",
)
@_class_mask_option("each caption's negatives")
def text_encoder_train(
    data_root: str,
    out: str,
    epochs: int,
    batch_size: int,
    lr: float,
    max_train: int,
    seed: int,
    device: str,
    buckets: int,
    class_mask: bool | None,
) -> None:
    """Train the n-gram BiGRU text encoder against Inception pool3 features of the images.

    \b
    Example:
      stackgan text-encoder train --data ../shared/data/birds-cub50 --out birds-text.safetensors
      stackgan train configs/v1_birds_stage1.yaml --set text.encoder=birds-text.safetensors \\
          --set text.dim=256
    """
    if not out.endswith(".safetensors"):
        raise click.UsageError("--out must end in .safetensors")
    from stackgan.metrics.features import InceptionFeatures
    from stackgan.metrics.real import dataset_features
    from stackgan.metrics.text_retrieval import FEATURE_SIZE, mask_labels
    from stackgan.text.trainable import save_matcher, train_matcher

    feats, ds = dataset_features(
        data_root, "train", FEATURE_SIZE, InceptionFeatures(device=device), max_images=max_train
    )
    labels = mask_labels(ds, class_mask)
    matcher, losses = train_matcher(
        ds.image_captions(),
        feats,
        buckets=buckets,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        labels=labels,
    )
    info = {
        "data": str(data_root),
        "num_images": len(ds),
        "epochs": epochs,
        "class_mask": labels is not None,
        "losses": losses,
    }
    save_matcher(out, matcher, info)
    click.echo(f"wrote {out}: {matcher.text.out_dim}-d, loss {losses[0]:.3f} -> {losses[-1]:.3f}")


@text_encoder.command("extract")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors.")
def text_encoder_extract(model: str, out: str) -> None:
    """Write the text encoder embedded in a GAN export as an encoder file of its own.

    A run that fine-tunes an export (train.init_from) needs its encoder under the path its
    config names (text.encoder); this writes it there.

    \b
    Example:
      stackgan text-encoder extract src/stackgan/assets/shapes-v1.safetensors \\
          --out runs/text/shapes-text-b4k.safetensors
    """
    if not out.endswith(".safetensors"):
        raise click.UsageError("--out must end in .safetensors")
    from stackgan.checkpoint import embedded_text_encoder, load_export
    from stackgan.text.trainable import save_matcher

    _, cfg = load_export(model)
    enc = embedded_text_encoder(model)
    if enc is None:
        raise click.ClickException(
            f"{model} embeds no text encoder (text.encoder {cfg.text.encoder})"
        )
    save_matcher(out, enc.matcher, {"extracted_from": str(model), "digest": enc.meta["digest"]})
    click.echo(f"wrote {out}: the encoder of {model} (its config names {cfg.text.encoder})")


@text_encoder.command("eval")
@click.option("--data", "data_root", required=True, type=click.Path(file_okay=False))
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    required=True,
    help="minilm, random (the untrained architecture, a floor) or a trained .safetensors; "
    "repeat to compare.",
)
@click.option("--max-train", default=0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="JSON results file.")
@_class_mask_option("the negatives when fitting the image projection of an untrained encoder")
def text_encoder_eval(
    data_root: str,
    encoders: tuple[str, ...],
    max_train: int,
    seed: int,
    device: str,
    out: str | None,
    class_mask: bool | None,
) -> None:
    """R-precision (1 true + 99 random captions) and top-1/5 text-to-image retrieval.

    \b
    Example:
      stackgan text-encoder eval --data ../shared/data/birds-cub50 \\
          --encoder minilm --encoder random --encoder birds-text.safetensors
    """
    from stackgan.metrics.features import InceptionFeatures
    from stackgan.metrics.text_retrieval import evaluate_text_encoder

    net = InceptionFeatures(device=device)
    rows = [
        evaluate_text_encoder(
            data_root,
            e,
            net,
            max_train=max_train,
            seed=seed,
            device=device,
            class_mask=class_mask,
        )
        for e in encoders
    ]
    click.echo(f"{'encoder':40s} {'R-precision':>16s} {'top-1':>7s} {'top-5':>7s}")
    for r in rows:
        click.echo(
            f"{r['encoder'][-40:]:40s} {r['r_precision']:8.3f} ± {r['r_precision_std']:.3f} "
            f"{r['top1']:7.3f} {r['top5']:7.3f}"
        )
    pairs = []
    if len(rows) > 1:
        from stackgan.metrics.r_precision import paired_comparison

        click.echo(
            "\npaired (same images, same negatives): difference of R-precision, 95% bootstrap "
            "interval, exact McNemar p"
        )
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                cmp = paired_comparison(a["hits"], b["hits"], seed=seed)
                pairs.append({"a": a["encoder"], "b": b["encoder"], **cmp})
                click.echo(
                    f"  {a['encoder'][-30:]} - {b['encoder'][-30:]}: {cmp['difference']:+.3f} "
                    f"[{cmp['ci95_low']:+.3f}, {cmp['ci95_high']:+.3f}]  p = {cmp['mcnemar_p']:.2g}"
                )
    if out:
        from stackgan.utils.cache import atomic_write

        results = {
            "encoders": [{k: v for k, v in r.items() if k != "hits"} for r in rows],
            "paired": pairs,
        }
        text = json.dumps(results, indent=2) + "\n"
        atomic_write(Path(out), lambda tmp: tmp.write_text(text))


from stackgan.cli.demo import demo  # noqa: E402

main.add_command(demo)

if __name__ == "__main__":  # pragma: no cover
    main()
