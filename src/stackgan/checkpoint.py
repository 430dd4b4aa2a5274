"""Training checkpoints and inference exports.

A training checkpoint is a ``torch.save`` dict of tensors and plain data (``format_version``,
``package_version``, ``config``, ``step``, ``generator``, ``generator_ema``, ``discriminators``,
``optimizers``, ``rng``), written atomically and loaded with ``weights_only=True``. Modules are
rebuilt from the stored config, never unpickled.

Both are verified on load: a checkpoint against the CRC-32 of every record of its zip (which
``torch.load`` does not check), an export against the SHA-256 of its tensors and metadata stored
in its header (``digest``). Neither is written, nor read, with a NaN or infinite weight. An
export's config is bounded and its tensor shapes are checked against the network that config
describes, built on the ``meta`` device (no memory), before anything is allocated.

An inference export is the EMA generator as ``.safetensors`` with the config and text-encoder
name in the metadata; sampling and serving load only this. A model conditioned on a trained
text encoder file (``text.encoder: path.safetensors``) carries that encoder inside the export
(fp32 tensors under ``text_encoder.``, its header in ``text_encoder_header``), so the export
keeps working when it is copied away from the encoder file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from stackgan import __version__
from stackgan.config import ConfigError, ExperimentConfig, config_from_dict
from stackgan.errors import StackGANError
from stackgan.models.registry import build_generator
from stackgan.text.base import is_encoder_file
from stackgan.text.trainable import TrainedTextEncoder, matcher_from_state, matcher_header
from stackgan.utils.archive import ArchiveError, check_zip_sizes
from stackgan.utils.cache import atomic_torch_save, atomic_write, read_safetensors

logger = logging.getLogger(__name__)


FORMAT_VERSION = 1
EXPORT_FORMAT = "stackgan-export"
TEXT_PREFIX = "text_encoder."
EXPORT_FORMAT_VERSION = 2  # 1: the whole training config under "config"; 2: a model spec
MODEL_SPEC_KEY = "model_spec"  # what sampling needs: model and text config, the data's name
SPEC_VERSION = 1
# Migrations of a model spec, spec_version -> the next version's spec. When a ModelConfig or
# TextConfig field is renamed or removed, bump SPEC_VERSION and add the step here, so that every
# export written before keeps loading (nanoGPT keeps model_args apart from the rest likewise).
SPEC_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
TRAINING_CONFIG_KEY = "training_config"  # the run's full config: a record, not read to load
DIGEST_KEY = "digest"  # export metadata: sha256 of the other metadata and every tensor
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format (a training checkpoint)


class CheckpointError(StackGANError, ValueError):
    """A checkpoint or export that cannot be read, naming the file and the problem."""


def _package_version() -> str:

    return __version__


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested dict/list, with a dotted name."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}" if prefix else str(i))


def nonfinite(obj: Any) -> list[str]:
    """Names of the floating-point tensors in ``obj`` (a state dict, a checkpoint) that hold a
    NaN or an infinity."""
    return [
        name
        for name, t in _tensors(obj)
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


def _refuse_nonfinite(path: Path, what: Any, action: str) -> None:
    bad = nonfinite(what)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"{action} {path}: non-finite values (NaN/inf) in {', '.join(bad[:3])}{more}"
        )


def save_checkpoint(
    path: str | Path, cfg: ExperimentConfig, previous: str | Path | None = None, **state: Any
) -> None:
    """Write a training checkpoint atomically. ``previous``: keep the checkpoint being replaced
    under this name (``checkpoint-previous.pt``). A state with a NaN or infinite tensor is
    refused (``CheckpointError``) and nothing is written."""
    path = Path(path)
    _refuse_nonfinite(path, state, "refusing to write")
    payload = {
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "config": cfg.to_dict(),
        **state,
    }
    atomic_torch_save(payload, path, backup=previous)


def _verify_zip(path: Path) -> None:
    """Check every record of a torch zip checkpoint against its CRC-32 (torch.load does not, so
    flipped bytes would otherwise load as wrong weights)."""
    try:
        check_zip_sizes(path)  # from the central directory, before anything is inflated
    except ArchiveError as exc:
        raise CheckpointError(f"checkpoint {exc}") from None
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({exc})") from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: record {bad} fails its CRC check (damaged on disk "
            "or in transfer)"
        )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint safely (``weights_only=True``), verified: zip CRCs, format,
    and no NaN or infinite tensor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    _verify_zip(path)
    try:
        ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # its CRCs passed, so the file is whole: it names a Python object (a payload), which
        # weights_only refuses. torch's advice (weights_only=False) would run that payload.
        raise CheckpointError(
            f"checkpoint {path} holds Python objects other than tensors and plain data; refused "
            "(loading it could run code). Only checkpoints written by stackgan are read"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    _check_fields(ckpt, path)
    _refuse_nonfinite(path, ckpt, "refusing to load")
    return ckpt


def _check_fields(ckpt: Any, path: Path) -> None:
    """The fields every reader of a checkpoint uses, of the right type."""
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a stackgan training checkpoint")
    version = ckpt["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: format_version is {repr(version)[:20]}, not a number")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format {version}; this stackgan reads up to "
            f"{FORMAT_VERSION} (upgrade the package)"
        )
    step = ckpt.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: step is {repr(step)[:20]}, not an iteration count")
    if not isinstance(ckpt.get("config", {}), dict):
        raise CheckpointError(f"{path}: config is not a mapping")
    for key in ("generator", "generator_ema"):
        weights = ckpt.get(key, {})
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise CheckpointError(f"{path}: {key} is not a mapping of named tensors")


def checkpoint_generator(ckpt: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The EMA generator weights of a loaded checkpoint (:func:`load_checkpoint` checked their
    type), checked against the network its config describes before anything uses them."""
    for key in ("generator_ema", "step", "config"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} has no {key}")
    weights: dict[str, torch.Tensor] = ckpt["generator_ema"]
    check_generator_shapes(
        path, checkpoint_config(ckpt, path), {k: v.shape for k, v in weights.items()}
    )
    return weights


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "") -> ExperimentConfig:
    try:
        return config_from_dict(ckpt["config"])
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from exc


def export_generator(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    cfg: ExperimentConfig,
    half: bool = False,
    text_encoder: TrainedTextEncoder | None = None,
    training_config: str | None = None,
) -> None:
    """Write the inference file: generator weights + its model spec, atomically.

    The metadata holds the model spec that loading reads (:func:`model_spec`, versioned and
    migrated, so exports survive config changes) and, as a record, the full training config
    (``training_config``: that JSON when re-exporting an export, else ``cfg``'s).

    A conditional model whose ``text.encoder`` is a trained encoder file embeds that encoder.
    ``text_encoder`` is that encoder, already read; when None the file is read now. A training
    run passes the one it read at its start, so its exports embed the encoder it trained with
    even if the file is replaced mid-run."""
    path = Path(path)
    # never write an export that load_export would refuse (the file at path stays as it is)
    check_generator_shapes(path, cfg, {k: v.shape for k, v in state_dict.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": str(EXPORT_FORMAT_VERSION),
        "package_version": _package_version(),
        MODEL_SPEC_KEY: json.dumps(model_spec(cfg)),
        TRAINING_CONFIG_KEY: training_config or json.dumps(cfg.to_dict()),
        "text_encoder": cfg.text.encoder,
        "text_dim": str(cfg.text.dim),
    }
    _refuse_nonfinite(path, tensors, "refusing to write")
    if cfg.model.conditional and is_encoder_file(cfg.text.encoder):
        enc = text_encoder if text_encoder is not None else TrainedTextEncoder(cfg.text.encoder)
        for k, v in enc.matcher.state_dict().items():  # fp32 even in half exports: same embeddings
            tensors[TEXT_PREFIX + k] = v.detach().cpu().contiguous()
        header = {**matcher_header(enc.matcher), "digest": enc.meta["digest"]}
        meta["text_encoder_header"] = json.dumps(header)
    meta[DIGEST_KEY] = export_digest(meta, tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def export_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata (all but the digest itself) and every tensor's name, dtype,
    shape and bytes, in name order: independent of how the file lays them out."""
    h = hashlib.sha256()
    h.update(
        json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True).encode()
    )
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def _read_export(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """An export's metadata and all its tensors, verified against the stored digest (exports
    written before digests existed are read unverified)."""
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is a training checkpoint, not an inference export: write one with "
            f"`stackgan export {path} --out model.safetensors`"
        )
    try:
        meta, tensors = read_safetensors(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"model file {path} is truncated or corrupt: {exc}") from exc
    if meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path} is not a stackgan export (no '{EXPORT_FORMAT}' metadata)")
    stored = meta.get(DIGEST_KEY)
    if stored is None:
        logger.debug("%s has no digest (written by an older stackgan): not verified", path)
    elif export_digest(meta, tensors) != stored:
        raise CheckpointError(
            f"model file {path} is corrupt: its tensors or metadata do not match the digest "
            "stored in it (damaged on disk or in transfer)"
        )
    _refuse_nonfinite(path, tensors, "refusing to load")
    return meta, tensors


def generator_shapes(cfg: ExperimentConfig) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the generator ``cfg`` describes, built on the meta device (nothing
    allocated, so a config asking for a huge network costs nothing to check)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build_generator(cfg).state_dict().items()}


def check_generator_shapes(path: str | Path, cfg: ExperimentConfig, shapes: dict[str, Any]) -> None:
    """Compare a state dict's tensor shapes with the generator ``cfg`` describes
    (:func:`generator_shapes`), so that a config asking for a huge network is refused before
    any memory is spent on it."""

    try:
        expected = generator_shapes(cfg)
    except (RuntimeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{path}: its config describes no buildable network: {exc}") from exc
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [k for k in expected if k in shapes and tuple(shapes[k]) != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} tensors of the wrong shape (e.g. {k}: {tuple(shapes[k])} in the "
                f"file, {expected[k]} for its config)"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{path}: weights do not match the stored config: {'; '.join(parts)}")


def model_spec(cfg: ExperimentConfig) -> dict[str, Any]:
    """What an export needs to be rebuilt and sampled: the model and text config and the
    dataset's name, with the spec's version."""
    return {
        "spec_version": SPEC_VERSION,
        "model": _plain(cfg.model),
        "text": _plain(cfg.text),
        "data": {"name": cfg.data.name},
    }


def _plain(section: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(section)))
    return out


def config_from_spec(spec: dict[str, Any], path: str | Path = "") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a model spec of any version (migrated step by step);
    the training sections take their defaults."""
    spec = dict(spec)
    version = spec.get("spec_version", 1)
    while isinstance(version, int) and not isinstance(version, bool) and version < SPEC_VERSION:
        if version not in SPEC_MIGRATIONS:
            break  # no migration from it: refused below
        spec = SPEC_MIGRATIONS[version](spec)
        version = spec["spec_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < SPEC_VERSION:
        raise CheckpointError(
            f"{path}: invalid config metadata: spec_version {repr(version)[:20]} is not a "
            f"version this stackgan reads (up to {SPEC_VERSION})"
        )
    if version > SPEC_VERSION:
        raise CheckpointError(
            f"{path} has model spec version {version}; this stackgan reads up to "
            f"{SPEC_VERSION} (upgrade the package)"
        )
    try:
        data = {"name": str(spec.get("data", {}).get("name", "shapes"))}
        return config_from_dict({"model": spec["model"], "text": spec["text"], "data": data})
    except (KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid config metadata: {exc}") from exc


def _export_config(meta: dict[str, str], path: Path) -> ExperimentConfig:
    """The config of an export of any format: format 2 reads its model spec; format 1 (the
    whole training config) is migrated to one, so a renamed training option never breaks it."""
    fmt = meta.get("format_version", "1")
    if not fmt.isdigit() or int(fmt) > EXPORT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has export format {fmt}; this stackgan reads up to {EXPORT_FORMAT_VERSION} "
            "(upgrade the package)"
        )
    try:
        if MODEL_SPEC_KEY in meta:
            spec = json.loads(meta[MODEL_SPEC_KEY])
        else:  # format 1
            full = json.loads(meta["config"])
            spec = {
                "spec_version": 1,
                "model": full["model"],
                "text": full["text"],
                "data": {"name": full.get("data", {}).get("name", "shapes")},
            }
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: invalid config metadata: {exc}") from exc
    except RecursionError:  # JSON nested thousands deep
        raise CheckpointError(f"{path}: invalid config metadata: nested too deeply") from None
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path}: invalid config metadata: the model spec is not a mapping")
    return config_from_spec(spec, path)


def export_training_config(path: str | Path) -> str | None:
    """The full training config JSON recorded in an export (None when it has none)."""
    meta, _ = read_safetensors(Path(path), lambda k: False)
    return meta.get(TRAINING_CONFIG_KEY) or meta.get("config")


def load_export(path: str | Path) -> tuple[dict[str, torch.Tensor], ExperimentConfig]:
    """Read an inference export -> (fp32 generator state dict, config), verified (digest,
    finite weights, shapes against the config); an embedded text encoder is left out
    (:func:`load_export_text_encoder` reads it). The config's training sections are defaults:
    an export keeps only what sampling needs (:func:`export_training_config` has the rest)."""
    path = Path(path)
    meta, tensors = _read_export(path)
    cfg = _export_config(meta, path)
    gen = {k: v for k, v in tensors.items() if not k.startswith(TEXT_PREFIX)}
    check_generator_shapes(path, cfg, {k: v.shape for k, v in gen.items()})
    state = {k: v.float() if v.is_floating_point() else v for k, v in gen.items()}
    return state, cfg


def load_export_text_encoder(
    path: str | Path,
) -> tuple[dict[str, str], dict[str, torch.Tensor]] | None:
    """The trained text encoder embedded in an export, as (header, matcher weights); None when
    the export has none (a built-in encoder, or an export written before encoders were
    embedded)."""
    meta, tensors = _read_export(Path(path))
    header = meta.get("text_encoder_header")
    if header is None:
        return None
    try:
        parsed = json.loads(header)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot read its embedded text encoder: {exc}") from None
    if not isinstance(parsed, dict):
        raise CheckpointError(f"{path}: its embedded text encoder header is not a mapping")
    return parsed, {
        k[len(TEXT_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TEXT_PREFIX)
    }


def embedded_text_encoder(
    path: str | Path, device: str | torch.device = "cpu"
) -> TrainedTextEncoder | None:
    """The trained text encoder embedded in an export, ready to encode; None when it has none."""
    embedded = load_export_text_encoder(path)
    if embedded is None:
        return None

    header, text_state = embedded
    matcher = matcher_from_state(header, text_state, f"{path} (embedded text encoder)")
    return TrainedTextEncoder(matcher=matcher, meta=header, device=device)


def load_generator_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], ExperimentConfig]:
    """Generator weights (EMA) and config from a training checkpoint (.pt) or an export."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_export(path)
    ckpt = load_checkpoint(path)
    return checkpoint_generator(ckpt, path), checkpoint_config(ckpt, path)


def stage1_weights(
    state: dict[str, torch.Tensor], cfg: ExperimentConfig
) -> dict[str, torch.Tensor]:
    """The Stage-I generator weights of a v1 model's state: a Stage-I's as they are, a
    Stage-II's ``stage1.*`` entries without the prefix (its frozen Stage-I)."""
    if cfg.model.version != "v1":
        raise ConfigError("only a StackGAN v1 model has a Stage-I")
    if cfg.model.stage == 1:
        return dict(state)
    return {k.removeprefix("stage1."): v for k, v in state.items() if k.startswith("stage1.")}


def with_stage1(
    state: dict[str, torch.Tensor], cfg: ExperimentConfig, stage1: str | Path
) -> tuple[dict[str, torch.Tensor], ExperimentConfig]:
    """A v1 Stage-II generator state with its Stage-I weights replaced by those of ``stage1``
    (an export or checkpoint of a Stage-I with the same text config), e.g. a Stage-I fine-tuned
    after the Stage-II was trained."""
    if cfg.model.version != "v1" or cfg.model.stage != 2:
        raise ConfigError("--stage1 needs a v1 Stage-II model")
    s1_state, s1_cfg = load_generator_weights(stage1)
    if s1_cfg.model.stage != 1 or s1_cfg.text != cfg.text:
        raise ConfigError(f"--stage1 {stage1} is not a Stage-I model with this text config")
    new = dict(state)
    for k, v in s1_state.items():
        if f"stage1.{k}" not in new or new[f"stage1.{k}"].shape != v.shape:
            raise ConfigError(f"--stage1 {stage1} does not match this Stage-I ({k})")
        new[f"stage1.{k}"] = v
    model = dataclasses.replace(cfg.model, stage1_checkpoint=str(stage1))
    return new, dataclasses.replace(cfg, model=model)
