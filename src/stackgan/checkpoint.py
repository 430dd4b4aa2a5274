"""Training checkpoints and inference exports.

A training checkpoint is a ``torch.save`` dict of tensors and plain data (``format_version``,
``package_version``, ``config``, ``step``, ``generator``, ``generator_ema``, ``discriminators``,
``optimizers``, ``rng``), written atomically and loaded with ``weights_only=True``. Modules are
rebuilt from the stored config, never unpickled.

An inference export is the EMA generator as ``.safetensors`` with the config and text-encoder
name in the metadata; sampling and serving load only this. A model conditioned on a trained
text encoder file (``text.encoder: path.safetensors``) carries that encoder inside the export
(fp32 tensors under ``text_encoder.``, its header in ``text_encoder_header``), so the export
keeps working when it is copied away from the encoder file.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from stackgan.config import ConfigError, ExperimentConfig, config_from_dict
from stackgan.text.encoders import is_encoder_file
from stackgan.utils.cache import atomic_torch_save, atomic_write, read_safetensors

if TYPE_CHECKING:
    from stackgan.text.trainable import TrainedTextEncoder

FORMAT_VERSION = 1
EXPORT_FORMAT = "stackgan-export"
TEXT_PREFIX = "text_encoder."


class CheckpointError(ValueError):
    """A checkpoint or export that cannot be read, naming the file and the problem."""


def _package_version() -> str:
    from stackgan import __version__

    return __version__


def save_checkpoint(path: str | Path, cfg: ExperimentConfig, **state: Any) -> None:
    payload = {
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "config": cfg.to_dict(),
        **state,
    }
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a stackgan training checkpoint")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format {ckpt['format_version']}; this stackgan reads up to "
            f"{FORMAT_VERSION} (upgrade the package)"
        )
    return ckpt


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
) -> None:
    """Write the inference file: generator weights + config JSON metadata, atomically.

    A conditional model whose ``text.encoder`` is a trained encoder file embeds that encoder.
    ``text_encoder`` is that encoder, already read; when None the file is read now. A training
    run passes the one it read at its start, so its exports embed the encoder it trained with
    even if the file is replaced mid-run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "package_version": _package_version(),
        "config": json.dumps(cfg.to_dict()),
        "text_encoder": cfg.text.encoder,
        "text_dim": str(cfg.text.dim),
    }
    if cfg.model.conditional and is_encoder_file(cfg.text.encoder):
        from stackgan.text.trainable import TrainedTextEncoder, matcher_header

        enc = text_encoder if text_encoder is not None else TrainedTextEncoder(cfg.text.encoder)
        for k, v in enc.matcher.state_dict().items():  # fp32 even in half exports: same embeddings
            tensors[TEXT_PREFIX + k] = v.detach().cpu().contiguous()
        header = {**matcher_header(enc.matcher), "digest": enc.meta["digest"]}
        meta["text_encoder_header"] = json.dumps(header)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_export(path: str | Path) -> tuple[dict[str, torch.Tensor], ExperimentConfig]:
    """Read an inference export -> (fp32 generator state dict, config); an embedded text
    encoder is left on disk (:func:`load_export_text_encoder` reads it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        meta, tensors = read_safetensors(path, lambda k: not k.startswith(TEXT_PREFIX))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"model file {path} is truncated or corrupt: {exc}") from exc
    if meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path} is not a stackgan export (no '{EXPORT_FORMAT}' metadata)")
    try:
        cfg = config_from_dict(json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid config metadata: {exc}") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return state, cfg


def load_export_text_encoder(
    path: str | Path,
) -> tuple[dict[str, str], dict[str, torch.Tensor]] | None:
    """The trained text encoder embedded in an export, as (header, matcher weights); None when
    the export has none (a built-in encoder, or an export written before encoders were
    embedded)."""
    try:
        meta, tensors = read_safetensors(Path(path), lambda k: k.startswith(TEXT_PREFIX))
        header = meta.get("text_encoder_header")
        if header is None:
            return None
        return json.loads(header), {k[len(TEXT_PREFIX) :]: v for k, v in tensors.items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read its embedded text encoder: {exc}") from exc


def embedded_text_encoder(
    path: str | Path, device: str | torch.device = "cpu"
) -> TrainedTextEncoder | None:
    """The trained text encoder embedded in an export, ready to encode; None when it has none."""
    embedded = load_export_text_encoder(path)
    if embedded is None:
        return None
    from stackgan.text.trainable import TrainedTextEncoder, matcher_from_state

    header, text_state = embedded
    matcher = matcher_from_state(header, text_state, f"{path} (embedded text encoder)")
    return TrainedTextEncoder(matcher=matcher, meta=header, device=device)
