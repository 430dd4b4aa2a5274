"""Crafted checkpoints and exports (issue 31, points 2, 10 and the checkpoint items of 12):
CRC-valid files whose fields are of the wrong kind, exports whose metadata asks for huge or
invalid networks; each is one error line, and nothing already written is replaced."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from stackgan.checkpoint import (
    DIGEST_KEY,
    CheckpointError,
    export_digest,
    export_generator,
    load_checkpoint,
    load_export,
)
from stackgan.text.trainable import (
    SentenceEncoder,
    TextEncoderError,
    TextImageMatcher,
    matcher_from_state,
    matcher_shapes,
)
from stackgan.train import train
from stackgan.train.rundir import RunDirError
from stackgan.train.setup import build_networks
from stackgan.train.state import build_state, restore_state, save_state

from ..conftest import tiny_config
from .bounds import assert_one_line, bounded, cli


@pytest.fixture(scope="module")
def tiny_run(tiny_shapes, tmp_path_factory):
    """A run folder as training leaves it (a full checkpoint and an export), written from
    freshly built networks without training them (training one iteration costs ~40 s here)."""
    run = tmp_path_factory.mktemp("run") / "r"
    run.mkdir()
    cfg = tiny_config(tiny_shapes, **{"train.total_iters": 2})
    generator, discriminators, g_ema = build_networks(
        cfg, torch.device("cpu"), torch.contiguous_format
    )
    state = build_state(cfg, generator, g_ema, discriminators)
    state.step = 1
    save_state(run / "checkpoint-latest.pt", cfg, state)
    export_generator(run / "model.safetensors", g_ema.state_dict(), cfg)
    return run


def _export_with(src, dst, edit):
    """A copy of an export whose metadata ``edit(meta)`` changed, its digest recomputed (an
    attacker can)."""
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    edit(meta)
    meta[DIGEST_KEY] = export_digest(meta, tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _spec(value):
    def edit(meta):
        spec = json.loads(meta["model_spec"])
        spec["spec_version"] = value
        meta["model_spec"] = json.dumps(spec).replace('"@@"', "1e400")

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_spec(0), "spec_version 0 is not a version"),
        (_spec("@@"), "spec_version inf is not a version"),  # 1e400: was an OverflowError
        (_spec("1"), "spec_version '1' is not a version"),
        (
            lambda m: m.update(model_spec="[" * 100_000 + "]" * 100_000),  # RecursionError
            "nested too deeply",
        ),
    ],
)
def test_export_spec_metadata(tiny_run, tmp_path, edit, match):
    bad = _export_with(tiny_run / "model.safetensors", tmp_path / "m.safetensors", edit)
    with bounded(), pytest.raises(CheckpointError, match=match):
        load_export(bad)
    r = cli("sample", "a red star", "--model", str(bad), "--out", str(tmp_path / "o"))
    assert_one_line(r, match.split(" is")[0])


def _header(**text):
    args = {"buckets": 64, "emb_dim": 8, "hidden": 8, "out_dim": 8, **text}
    return {"format_version": "1", "text": json.dumps(args), "image_dim": "8"}


def test_text_encoder_header_is_checked_before_allocation():
    small = {}  # the weights present: none for a header claiming 400000 x 2048
    with bounded(max_mb=100), pytest.raises(TextEncoderError, match="weights do not match"):
        matcher_from_state(_header(buckets=400_000, emb_dim=2048), small, "m")  # was 3.5 GB
    for bad in (10**9 + 0.5, -5, "many"):
        with bounded(max_mb=100), pytest.raises(TextEncoderError, match="invalid text encoder"):
            matcher_from_state(_header(buckets=bad), small, "m")
    with pytest.raises(TextEncoderError, match="invalid format_version"):
        matcher_from_state({**_header(), "format_version": "x"}, small, "m")


def test_matcher_shapes_are_those_of_the_real_module():
    args = {"buckets": 11, "emb_dim": 3, "hidden": 5, "out_dim": 7}
    real = TextImageMatcher(SentenceEncoder(**args), 13).state_dict()
    assert matcher_shapes(args, 13) == {k: tuple(v.shape) for k, v in real.items()}
    rebuilt = matcher_from_state(
        {"format_version": "1", "text": json.dumps(args), "image_dim": "13"}, real, "m"
    )
    assert rebuilt.text.buckets == 11


def _checkpoint_with(tiny_run, dst, edit):
    ckpt = load_checkpoint(tiny_run / "checkpoint-latest.pt")
    edit(ckpt)
    torch.save(ckpt, dst)  # a whole file: every CRC is valid
    return dst


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda c: c.update(format_version="1"), "format_version is '1', not a number"),
        (lambda c: c.pop("generator_ema"), "has no generator_ema"),
        (lambda c: c.pop("step"), "has no step"),
        (lambda c: c.update(generator_ema=[1, 2]), "generator_ema is not a mapping"),
        (lambda c: c.update(step=-3), "step is -3"),
    ],
)
def test_checkpoint_fields(tiny_run, tmp_path, edit, match):
    ckpt = _checkpoint_with(tiny_run, tmp_path / "c.pt", edit)
    r = cli("export", str(ckpt), "--out", str(tmp_path / "m.safetensors"))
    assert_one_line(r, match)


class _Payload:
    def __reduce__(self):
        return (print, ("ran",))


def test_pickle_payload_checkpoint_is_named_as_such(tiny_run, tmp_path):
    ckpt = _checkpoint_with(tiny_run, tmp_path / "c.pt", lambda c: c.update(extra=_Payload()))
    r = cli("export", str(ckpt), "--out", str(tmp_path / "m.safetensors"))
    line = assert_one_line(r, "holds Python objects other than tensors", "could run code")
    assert "weights_only=False" not in line and "truncated" not in line


def test_wrong_shaped_ema_weights_never_replace_the_out_file(tiny_run, tmp_path):
    def edit(c):
        k = next(iter(c["generator_ema"]))
        c["generator_ema"][k] = torch.zeros(3)

    ckpt = _checkpoint_with(tiny_run, tmp_path / "c.pt", edit)
    out = tmp_path / "model.safetensors"
    shutil.copy(tiny_run / "model.safetensors", out)
    before = out.read_bytes()
    r = cli("export", str(ckpt), "--out", str(out))
    assert_one_line(r, "weights do not match the stored config")
    assert out.read_bytes() == before
    load_export(out)


def test_resume_with_a_bad_rng_and_a_run_without_checkpoints(tiny_shapes, tiny_run, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    latest = run / "checkpoint-latest.pt"
    _checkpoint_with(tiny_run, latest, lambda c: c.update(rng={"torch": "not a state"}))
    cfg = tiny_config(tiny_shapes, **{"train.total_iters": 2})
    generator, discriminators, g_ema = build_networks(
        cfg, torch.device("cpu"), torch.contiguous_format
    )
    state = build_state(cfg, generator, g_ema, discriminators)
    with pytest.raises(CheckpointError, match="cannot resume from it"):
        restore_state(latest, cfg, state)  # what train(..., resume=latest) runs
    killed = tmp_path / "killed"  # stopped before its first checkpoint: a log and stats only
    killed.mkdir()
    (killed / "stats.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(RunDirError, match="nothing to resume: pass --overwrite") as exc:
        train(cfg, killed)
    assert "--resume" not in str(exc.value)
