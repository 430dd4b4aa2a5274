"""The authors' original generator weights (``netG_*.pth``) as an inference export.

Reads the generators of the two PyTorch releases by Han Zhang et al. -- StackGAN-Pytorch
(``STAGE1_G`` and ``STAGE2_G``, the ICCV 2017 paper's sec. 3.2-3.3) and StackGAN-v2 (``G_NET``,
the TPAMI 2018 tree, sec. 3.1) -- and writes them with this project's writer, so that
``stackgan sample --model`` and :class:`~stackgan.sampling.Text2ImageSampler` run them.

Every size is inferred from the tensor shapes, every tensor is renamed to our module names and
its shape checked against our network built from those sizes (on the meta device) before
anything is written. Two concatenation orders differ from ours and are permuted: Stage-I's fc
reads ``cat(z, c)`` where ours reads ``cat(c, z)``, and StackGAN-v2's ``jointConv`` reads
``cat(c, h)`` where our join reads ``cat(h, c)``. The PyTorch release's Conditioning
Augmentation ends in a plain ReLU, which the export records as ``model.ca_activation: relu``.
The files are plain ``state_dict``s read with ``weights_only=True``: nothing in them can run.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from stackgan.checkpoint import export_generator, generator_shapes, nonfinite
from stackgan.config import ConfigError, ExperimentConfig, config_from_dict
from stackgan.errors import StackGANError
from stackgan.models.layers import BASE_SIZE, CODE_WIDTH, STAGE2_CODE_SIZE
from stackgan.text.encoders import CHAR_CNN_RNN_DIM
from stackgan.utils.archive import ArchiveError, check_zip_sizes

logger = logging.getLogger(__name__)

Source = Literal["auto", "stackgan-pytorch", "stackgan-v2"]
SOURCES: tuple[Source, ...] = ("auto", "stackgan-pytorch", "stackgan-v2")
Kind = Literal["stage1", "stage2", "v2"]
KIND_NAMES: dict[Kind, str] = {
    "stage1": "StackGAN-Pytorch Stage-I generator (STAGE1_G)",
    "stage2": "StackGAN-Pytorch Stage-II generator (STAGE2_G)",
    "v2": "StackGAN-v2 generator (G_NET)",
}
KIND_SOURCE: dict[Kind, Source] = {
    "stage1": "stackgan-pytorch",
    "stage2": "stackgan-pytorch",
    "v2": "stackgan-v2",
}
DATA_PARALLEL_PREFIX = "module."  # StackGAN-v2 saves netG from inside nn.DataParallel
# Top-level modules of the releases' discriminators (STAGE1_D/STAGE2_D, D_NET64..256)
DISCRIMINATOR_PREFIXES = (
    "encode_img.",
    "get_cond_logits.",
    "get_uncond_logits.",
    "img_code_s16.",
    "logits.",
    "uncond_logits.",
    "jointConv.",
)
# The reference fc projects to GF_DIM*8 channels at 4x4 (STAGE1_G) and ends at GF_DIM/2
UNKNOWN_DATASET = "unknown"  # a netG file does not record its dataset (birds, COCO, ...)
V2_DEFAULT_RES_BLOCKS = 2  # cfg.GAN.R_NUM in the StackGAN-v2 presets (unused by one branch)
_LOAD_ERRORS = (  # what torch.load raises on a file that is not a (safe) torch file
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
    zipfile.BadZipFile,
    UnicodeDecodeError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ImportError,
)


class ConvertError(StackGANError, ValueError):
    """A file that cannot be converted, naming the file and the problem."""


@dataclass(frozen=True)
class Converted:
    """A converted generator: our state dict (fp32), its config and what it was."""

    state: dict[str, torch.Tensor]
    cfg: ExperimentConfig
    kind: Kind

    @property
    def description(self) -> str:
        return KIND_NAMES[self.kind]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``'d state dict (zip or legacy pre-1.6 format), read without running any
    pickled code, with DataParallel's ``module.`` prefix stripped from every key."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"file not found: {path}")
    try:
        check_zip_sizes(path)  # torch.load allocates each record's declared size
    except ArchiveError as exc:
        raise ConvertError(str(exc)) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as exc:  # the loader's own message is in the cause (`stackgan -v`)
        raise ConvertError(
            f"{path} is not a PyTorch weights file, or holds objects other than tensors "
            "(which are refused: no pickled code runs)"
        ) from exc
    if isinstance(obj, Mapping) and "format_version" in obj and "generator_ema" in obj:
        raise ConvertError(
            f"{path} is a stackgan training checkpoint: write its export with `stackgan export`"
        )
    if not isinstance(obj, Mapping) or not obj:
        raise ConvertError(f"{path} is not a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError(f"{path} is not a state dict: entry {bad[0]!r} is not a named tensor")
    return {k.removeprefix(DATA_PARALLEL_PREFIX): v for k, v in obj.items()}


def detect(state: Mapping[str, torch.Tensor], where: str = "the state dict") -> Kind:
    """Which reference generator ``state`` holds; a :class:`ConvertError` names what it is
    instead (a discriminator, something else)."""
    keys = list(state)
    if any(k.startswith(DISCRIMINATOR_PREFIXES) for k in keys):
        raise ConvertError(f"{where} is a discriminator; convert the netG_*.pth file")
    if any(k.startswith("STAGE1_G.") for k in keys):
        return "stage2"
    if any(k.startswith("h_net1.") for k in keys):
        return "v2"
    if any(k.startswith("upsample1.") for k in keys) and "img.0.weight" in state:
        return "stage1"
    raise ConvertError(
        f"{where} is not a StackGAN generator: expected the keys of a StackGAN-Pytorch "
        "STAGE1_G (upsample1.*, img.0.weight) or STAGE2_G (STAGE1_G.*), or of a StackGAN-v2 "
        f"G_NET (h_net1.*); found {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
    )


def _shape(state: Mapping[str, torch.Tensor], key: str, ndim: int, where: str) -> list[int]:
    if key not in state:
        raise ConvertError(f"{where}: missing {key}")
    shape = list(state[key].shape)
    if len(shape) != ndim:
        raise ConvertError(f"{where}: {key} has shape {tuple(shape)}, expected {ndim} dimensions")
    return shape


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """How many distinct indices the ``(\\d+)`` group of ``pattern`` takes among the keys."""
    rx = re.compile(pattern)
    return len({m[1] for k in state if (m := rx.match(k))})


def _ca_sizes(
    state: Mapping[str, torch.Tensor], prefix: str, factor: int, where: str
) -> tuple[int, int]:
    """(text_dim, cond_dim) of a CA_NET whose fc makes ``factor * cond_dim`` outputs."""
    out, text_dim = _shape(state, f"{prefix}ca_net.fc.weight", 2, where)
    if out % factor:
        raise ConvertError(f"{where}: {prefix}ca_net.fc.weight has {out} outputs, not {factor}*c")
    return text_dim, out // factor


def _stage1_model(state: Mapping[str, torch.Tensor], prefix: str, where: str) -> dict[str, object]:
    """Our v1 model config of a STAGE1_G under ``prefix``."""
    text_dim, cond_dim = _ca_sizes(state, prefix, 2, where)
    fc_out, fc_in = _shape(state, f"{prefix}fc.0.weight", 2, where)
    per_channel = CODE_WIDTH * BASE_SIZE**2  # STAGE1_G: self.gf_dim = cfg.GAN.GF_DIM * 8
    if fc_out % per_channel:
        raise ConvertError(f"{where}: {prefix}fc.0.weight has {fc_out} outputs, not GF_DIM*128")
    n_up = _count(state, re.escape(prefix) + r"upsample(\d+)\.")
    return {
        "version": "v1",
        "stage": 1,
        "text_dim": text_dim,
        "z_dim": fc_in - cond_dim,
        "cond_dim": cond_dim,
        "ngf": fc_out // per_channel,
        "stage1_img_size": BASE_SIZE * 2**n_up,
        "stage2_img_size": BASE_SIZE * 2**n_up * 4,  # unused by Stage-I; the paper's ratio
        "ca_activation": "relu",
    }


def _stage2_model(state: Mapping[str, torch.Tensor], where: str) -> dict[str, object]:
    model = _stage1_model(state, "STAGE1_G.", where)
    text_dim, cond_dim = _ca_sizes(state, "", 2, where)
    if (text_dim, cond_dim) != (model["text_dim"], model["cond_dim"]):
        raise ConvertError(
            f"{where}: Stage-II's CA is {text_dim} -> {cond_dim} but Stage-I's is "
            f"{model['text_dim']} -> {model['cond_dim']}; this project's config has one of each"
        )
    n_up = _count(state, r"upsample(\d+)\.")
    return {
        **model,
        "stage": 2,
        "ngf2": _shape(state, "encoder.0.weight", 4, where)[0],
        "num_res_blocks": _count(state, r"residual\.(\d+)\."),
        "stage2_img_size": STAGE2_CODE_SIZE * 2**n_up,
    }


def _v2_model(state: Mapping[str, torch.Tensor], where: str) -> dict[str, object]:
    conditional = "ca_net.fc.weight" in state
    text_dim, cond_dim = _ca_sizes(state, "", 4, where) if conditional else (0, 0)
    fc_in = _shape(state, "h_net1.fc.0.weight", 2, where)[1]
    num_branches = _count(state, r"img_net(\d+)\.")
    res = {i: _count(state, rf"h_net{i}\.residual\.(\d+)\.") for i in range(2, num_branches + 1)}
    if len(set(res.values())) > 1:
        raise ConvertError(
            f"{where}: residual blocks per branch {res} differ; this project's tree uses one "
            "count for every branch"
        )
    model: dict[str, object] = {
        "version": "v2",
        "conditional": conditional,
        "text_dim": text_dim or CHAR_CNN_RNN_DIM,
        "z_dim": fc_in - cond_dim,
        "ngf": _shape(state, "img_net1.img.0.weight", 4, where)[1],
        "num_branches": num_branches,
        "num_res_blocks": next(iter(res.values()), V2_DEFAULT_RES_BLOCKS),
        "stage1_img_size": BASE_SIZE * 2 ** _count(state, r"h_net1\.upsample(\d+)\."),
    }
    if conditional:
        model["cond_dim"] = cond_dim
    return model


def _config(kind: Kind, state: Mapping[str, torch.Tensor], where: str) -> ExperimentConfig:
    """The config of our generator with the sizes the reference tensors have."""
    if kind == "stage1":
        model = _stage1_model(state, "", where)
    elif kind == "stage2":
        model = _stage2_model(state, where)
    else:
        model = _v2_model(state, where)
    text_dim = model.pop("text_dim")
    if text_dim != CHAR_CNN_RNN_DIM:
        logger.warning(
            "%s: %s-d text input; the precomputed char-CNN-RNN vectors that sampling reads are "
            "%d-d, so this export loads with load_export() but not with Text2ImageSampler",
            where,
            text_dim,
            CHAR_CNN_RNN_DIM,
        )
    try:
        return config_from_dict(
            {
                "name": "original",
                "data": {"name": UNKNOWN_DATASET},
                "text": {"encoder": "precomputed", "dim": text_dim},
                "model": model,
            }
        )
    except ConfigError as exc:
        raise ConvertError(f"{where}: its sizes fit no network of this project: {exc}") from None


_Rule = tuple[str, Callable[[re.Match[str]], str]]


def _up(prefix: str, base: str) -> _Rule:
    """``upsampleN.{1,2}.x`` (Upsample, conv, BN, act) -> ``{base}.{N-1}.{1,2}.x``."""
    return (
        re.escape(prefix) + r"upsample(\d+)\.([12]\..+)",
        lambda m: f"{base}.{int(m[1]) - 1}.{m[2]}",
    )


def _prefixed(rule: _Rule, ref_prefix: str, our_prefix: str) -> _Rule:
    pattern, repl = rule
    return re.escape(ref_prefix) + pattern, lambda m: our_prefix + repl(m)


def _rules(kind: Kind, num_res_blocks: int) -> list[_Rule]:
    """Reference key -> our key, as (pattern, replacement) pairs tried in order."""
    ca: _Rule = (r"ca_net\.fc\.(weight|bias)", lambda m: f"ca.fc.{m[1]}")
    if kind == "v2":
        return [
            ca,
            (r"h_net1\.fc\.([01]\..+)", lambda m: f"fc.{m[1]}"),
            _up("h_net1.", "branches.0"),
            (r"img_net(\d+)\.img\.0\.weight", lambda m: f"heads.{int(m[1]) - 1}.0.weight"),
            (r"h_net(\d+)\.jointConv\.([01]\..+)", lambda m: f"joins.{int(m[1]) - 1}.{m[2]}"),
            (
                r"h_net(\d+)\.residual\.(\d+)\.block\.(\d\..+)",
                lambda m: f"branches.{int(m[1]) - 1}.{m[2]}.body.{m[3]}",
            ),
            (  # the branch's upsample follows its residual blocks in our Sequential
                r"h_net(\d+)\.upsample\.([12]\..+)",
                lambda m: f"branches.{int(m[1]) - 1}.{num_res_blocks}.{m[2]}",
            ),
        ]
    stage1: list[_Rule] = [
        ca,
        (r"fc\.([01]\..+)", lambda m: f"fc.{m[1]}"),
        _up("", "up"),
        (r"img\.0\.weight", lambda m: "to_rgb.0.weight"),
    ]
    if kind == "stage1":
        return stage1
    return [
        *[_prefixed(rule, "STAGE1_G.", "stage1.") for rule in stage1],
        ca,
        (r"encoder\.(\d+\..+)", lambda m: f"encoder.{m[1]}"),
        (r"hr_joint\.([01]\..+)", lambda m: f"joint.{m[1]}"),
        (r"residual\.(\d+)\.block\.(\d\..+)", lambda m: f"res.{m[1]}.body.{m[2]}"),
        *stage1[2:],
    ]


def _rename(
    state: Mapping[str, torch.Tensor], kind: Kind, cfg: ExperimentConfig, where: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(our state dict, our key -> reference key). A BatchNorm saved by PyTorch < 0.4.1 has
    no ``num_batches_tracked``: it is filled in as 0 (it only matters to momentum=None)."""
    rules = [(re.compile(p), r) for p, r in _rules(kind, cfg.model.num_res_blocks)]
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        ours = next((r(m) for rx, r in rules if (m := rx.fullmatch(key))), None)
        if ours is None:
            raise ConvertError(f"{where}: unexpected key {key} in a {KIND_NAMES[kind]}")
        out[ours], origin[ours] = value, key
    for key in [k for k in out if k.endswith(".running_mean")]:
        tracked = key.removesuffix("running_mean") + "num_batches_tracked"
        if tracked not in out:
            out[tracked] = torch.zeros((), dtype=torch.long)
            origin[tracked] = f"{origin[key].removesuffix('running_mean')}num_batches_tracked"
    return out, origin


def _check_shapes(
    state: Mapping[str, torch.Tensor], origin: Mapping[str, str], cfg: ExperimentConfig, where: str
) -> None:
    """Every tensor against our generator built from ``cfg`` on the meta device, naming the
    reference key of the first that does not fit."""
    expected = generator_shapes(cfg)
    for key, value in state.items():
        if key not in expected:
            raise ConvertError(f"{where}: {origin[key]} has no place in the inferred network")
        if tuple(value.shape) != expected[key]:
            raise ConvertError(
                f"{where}: {origin[key]} has shape {tuple(value.shape)}, but the network its "
                f"other tensors describe needs {expected[key]}"
            )
    missing = [k for k in expected if k not in state]
    if missing:
        raise ConvertError(
            f"{where}: {len(missing)} tensors missing for the inferred network (ours: "
            f"{missing[0]}{', ...' if len(missing) > 1 else ''})"
        )


def _permute_inputs(w: torch.Tensor, first: int) -> torch.Tensor:
    """Input columns (dim 1) ``[a (first) | b]`` -> ``[b | a]``: the other concatenation order."""
    return torch.cat([w[:, first:], w[:, :first]], dim=1)


def _reorder(state: dict[str, torch.Tensor], kind: Kind, cfg: ExperimentConfig) -> None:
    m = cfg.model
    if kind in ("stage1", "stage2"):
        key = "fc.0.weight" if kind == "stage1" else "stage1.fc.0.weight"
        state[key] = _permute_inputs(state[key], m.z_dim)  # cat(z, c) -> cat(c, z)
        return
    join_dim = m.cond_dim if m.conditional else m.z_dim  # v2 tiles z when unconditional
    for i in range(1, m.num_branches):
        key = f"joins.{i}.0.weight"
        state[key] = _permute_inputs(state[key], join_dim)  # cat(c, h) -> cat(h, c)


def convert_state_dict(
    state: Mapping[str, torch.Tensor], source: Source = "auto", where: str = "the state dict"
) -> Converted:
    """A reference generator's state dict (``module.`` already stripped) -> our generator's
    fp32 state dict and config, checked tensor by tensor.

    Args:
        state: the ``netG`` state dict.
        source: ``auto`` detects the release; naming one refuses a file of the other.
        where: how errors name the input (a path).

    Raises:
        ConvertError: a discriminator, another kind of file, a shape that does not fit, or a
            NaN / infinite weight.
    """
    if source not in SOURCES:
        raise ConvertError(f"source must be one of {SOURCES}, got {source!r}")
    kind = detect(state, where)
    if source != "auto" and KIND_SOURCE[kind] != source:
        raise ConvertError(f"{where} holds a {KIND_NAMES[kind]}, not a {source} generator")
    bad = nonfinite(dict(state))
    if bad:
        raise ConvertError(f"{where}: non-finite values (NaN/inf) in {', '.join(bad[:3])}")
    cfg = _config(kind, state, where)
    ours, origin = _rename(state, kind, cfg, where)
    _check_shapes(ours, origin, cfg, where)
    ours = {
        k: v.detach().float() if v.is_floating_point() else v.detach().long()
        for k, v in ours.items()
    }
    _reorder(ours, kind, cfg)
    return Converted(ours, cfg, kind)


def convert_file(
    path: str | Path, out: str | Path, source: Source = "auto", half: bool = False
) -> Converted:
    """Read a reference ``netG_*.pth`` and write it as an inference export at ``out``
    (fp16 weights with ``half``); the export samples with ``text.encoder: precomputed``."""
    converted = convert_state_dict(read_state_dict(path), source, where=str(path))
    export_generator(out, converted.state, converted.cfg, half=half)
    return converted
