"""What ``stackgan train`` checks before it creates a run folder, and the short summary it prints.

Only cheap checks go here (a missing data folder, a split with no images, a Stage-I model or
text-encoder file that is not there, a resume checkpoint that is not there): each is an error
that would otherwise surface after the run folder was numbered and created, leaving an empty
``runs/0000N-...`` behind and shifting the numbers of the runs after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackgan.config import ExperimentConfig
from stackgan.config_checks import image_sizes
from stackgan.config_parse import ConfigError
from stackgan.data.io import DatasetError, load_size
from stackgan.data.layouts import read_index
from stackgan.data.packed import is_pack, read_pack_meta
from stackgan.models.registry import output_size
from stackgan.pretrained import resolve_model
from stackgan.text.base import is_encoder_file
from stackgan.train.monitor import metric_names
from stackgan.train.rundir import PREVIOUS

# Where each dataset of the presets comes from, for the error when its folder is missing
DATA_HINTS = {
    "shapes": "render it with `stackgan data shapes --out {root}`",
    "birds": "CUB-200-2011 with the StackGAN captions cannot be downloaded by stackgan: "
    "docs/data.md ('CUB-200-2011 birds') says where to get it and how to lay it out",
    "flowers": "Oxford-102 flowers with the StackGAN captions cannot be downloaded by "
    "stackgan: docs/data.md ('Oxford-102 flowers') says where to get it",
}


def missing_data_message(name: str, root: str | Path) -> str:
    """One line for a missing dataset folder, naming where ``data.name``'s data comes from."""
    hint = DATA_HINTS.get(name, "docs/data.md lists the layouts stackgan reads")
    return f"dataset folder not found: {root} (data.root, for data.name {name}: " + (
        hint.format(root=root) + ")"
    )


@dataclass(frozen=True)
class Preflight:
    """What the checks found: the number of images and captions of the split (None when the
    data is a packed file, whose index is read with its images)."""

    num_images: int | None
    num_captions: int | None


def preflight(cfg: ExperimentConfig, resume: str | Path | None = None) -> Preflight:
    """Check what a run needs that is cheap to check, before anything is written.

    Raises:
        DatasetError: the data folder is missing, or its split lists no images or lacks a file.
        ConfigError: a Stage-I model, text-encoder or embeddings file that is not there.
        FileNotFoundError: ``resume`` is not there.
    """
    dc = cfg.data
    root = Path(dc.root)
    # (a missing latest checkpoint with the previous one beside it: resume falls back to that)
    if resume is not None and not any(
        p.is_file() for p in (Path(resume), Path(resume).with_name(PREVIOUS))
    ):
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint file")
    if not root.exists():
        raise DatasetError(missing_data_message(dc.name, root))
    if cfg.model.version == "v1" and cfg.model.stage == 2:
        if not cfg.model.stage1_checkpoint:
            raise ConfigError("model.stage1_checkpoint is required for stage 2")
        if not resolve_model(cfg.model.stage1_checkpoint).is_file():
            raise ConfigError(
                f"model.stage1_checkpoint {cfg.model.stage1_checkpoint}: no such file (the "
                "Stage-I run's model.safetensors)"
            )
    if cfg.model.conditional:
        enc = cfg.text.encoder
        if is_encoder_file(enc) and not Path(enc).is_file():
            raise ConfigError(f"text.encoder {enc}: no such file")
        if enc == "precomputed" and not Path(cfg.text.embeddings_file).is_file():
            raise ConfigError(f"text.embeddings_file {cfg.text.embeddings_file!r}: no such file")
    if is_pack(root):  # (a pack is a captioned split: unconditional runs read folders)
        if cfg.model.conditional:
            _check_pack_sizes(cfg, root)
        return Preflight(None, None)
    if not cfg.model.conditional:
        return Preflight(None, None)  # (a folder of images: the dataset counts them itself)
    # the split's index: every listed image and caption file is there (no image is decoded)
    index = read_index(root, dc.split, dc.layout, dc.max_images)
    return Preflight(len(index.keys), sum(len(c) for c in index.captions))


def _check_pack_sizes(cfg: ExperimentConfig, root: Path) -> None:
    """A pack holds the images at fixed sizes: the size training loads and, when the run scores
    itself, the output size of the test split the metrics compare with. A missing one would
    otherwise stop the run at its first metric tick, an hour or more in."""
    meta = read_pack_meta(root)
    have = set(meta["sizes"])
    sizes = image_sizes(cfg)
    need = {load_size(sizes[-1], cfg.data.random_crop)}
    scored = cfg.train.metric_ticks > 0 and bool(metric_names(cfg))
    if scored:
        need.add(output_size(cfg))
        if "test" not in meta["splits"]:
            raise DatasetError(
                f"{root} has no 'test' split, which train.metrics are measured on "
                "(set train.metric_ticks=0, or pack the test split too)"
            )
    if need - have:
        what = "training and its metrics read" if scored else "training reads"
        raise DatasetError(
            f"{root} holds {', '.join(f'{s}px' for s in sorted(have))} images; {what} "
            f"{', '.join(f'{s}px' for s in sorted(need))} (repack with --sizes "
            f"{','.join(map(str, sorted(have | need)))})"
        )


def summary(cfg: ExperimentConfig, config_path: str, found: Preflight) -> list[str]:
    """The few lines ``stackgan train`` prints before it starts (the full config goes to the
    run folder's ``config.yaml``; ``--dry-run`` prints it)."""
    m, dc, tc = cfg.model, cfg.data, cfg.train
    kind = f"v1 Stage-{'I' * m.stage}" if m.version == "v1" else f"v2 {m.num_branches}-branch"
    mode = "" if m.conditional else ", unconditional"
    px = "/".join(str(s) for s in image_sizes(cfg))
    counts = ""
    if found.num_images is not None:
        counts = f", {found.num_images:,} images, {found.num_captions:,} captions"
    text = f"; text: {cfg.text.encoder} ({cfg.text.dim}-d)" if m.conditional else ""
    return [
        f"config: {config_path} ({cfg.name}): {kind}{mode}, {px} px",
        f"data: {dc.root} ({dc.split} split{counts}){text}",
        f"training: {tc.total_iters:,} iterations at batch {tc.batch_size}, device {tc.device}",
    ]
