import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from stackgan.checkpoint import (
    SPEC_VERSION,
    CheckpointError,
    export_generator,
    export_training_config,
    load_checkpoint,
    load_export,
    save_checkpoint,
)
from stackgan.config import ExperimentConfig
from stackgan.models.registry import build_generator
from stackgan.sampling import default_model_path
from stackgan.utils.cache import atomic_torch_save


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, ExperimentConfig(), step=1)
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C or a kill mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_checkpoint_format_checks(tmp_path):
    torch.save({"not": "ours"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a stackgan training checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    save_checkpoint(tmp_path / "new.pt", ExperimentConfig(), step=0)
    ck = load_checkpoint(tmp_path / "new.pt")
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade"):
        load_checkpoint(tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_export_round_trip_and_half(tmp_path):
    cfg = ExperimentConfig()
    cfg = type(cfg)(model=type(cfg.model)(ngf=4, z_dim=8, cond_dim=8))
    g = build_generator(cfg)
    export_generator(tmp_path / "a.safetensors", g.state_dict(), cfg)
    export_generator(tmp_path / "h.safetensors", g.state_dict(), cfg, half=True)
    full, cfg2 = load_export(tmp_path / "a.safetensors")
    half, _ = load_export(tmp_path / "h.safetensors")
    assert cfg2 == cfg
    for k, v in g.state_dict().items():
        assert torch.equal(full[k], v)
        assert full[k].dtype == half[k].dtype  # loaded back as fp32
        assert torch.allclose(half[k].float(), v.float(), rtol=1e-3, atol=1e-4)
    assert (tmp_path / "h.safetensors").stat().st_size < (tmp_path / "a.safetensors").stat().st_size


def test_foreign_safetensors_is_rejected(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a stackgan export"):
        load_export(tmp_path / "other.safetensors")


def test_atomic_write_permissions_and_no_leftovers(tmp_path):
    import os

    from stackgan.utils.cache import atomic_write

    target = tmp_path / "sub" / "file.bin"
    old = os.umask(0o022)
    try:
        atomic_write(target, lambda tmp: tmp.write_bytes(b"one"))
        # some writers (safetensors) create their files 0600; the result follows the umask
        atomic_write(tmp_path / "f.safetensors", lambda tmp: (tmp.touch(), tmp.chmod(0o600)))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"one" and (target.stat().st_mode & 0o777) == 0o644
    assert ((tmp_path / "f.safetensors").stat().st_mode & 0o777) == 0o644

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"one"  # the previous file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]  # no temporary left


def _write_format1(path, cfg, state, extra_train=None):
    """An export as stackgan wrote them before model specs (format 1): the whole training
    config under "config", no digest."""
    full = cfg.to_dict()
    full["train"].update(extra_train or {})
    meta = {
        "format": "stackgan-export",
        "format_version": "1",
        "package_version": "0.1.0",
        "config": json.dumps(full),
        "text_encoder": cfg.text.encoder,
        "text_dim": str(cfg.text.dim),
    }
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)


def test_old_exports_keep_loading_through_the_model_spec(tmp_path):
    cfg = ExperimentConfig()
    cfg = type(cfg)(model=type(cfg.model)(ngf=4, z_dim=8, cond_dim=8))
    g = build_generator(cfg)
    # format 1 with a training option this version does not know: the spec ignores it
    old = tmp_path / "old.safetensors"
    _write_format1(old, cfg, g.state_dict(), extra_train={"an_option_renamed_later": 3})
    state, cfg1 = load_export(old)
    assert cfg1.model == cfg.model and cfg1.text == cfg.text
    assert all(torch.equal(state[k], v) for k, v in g.state_dict().items())
    # the bundled model is a format-1 export
    meta = safe_open(str(default_model_path()), "pt").metadata()
    assert meta["format_version"] == "1" and "model_spec" not in meta
    assert load_export(default_model_path())[1].model.stage == 2
    # format 2 writes the spec, and the training config as a record
    new = tmp_path / "new.safetensors"
    export_generator(new, g.state_dict(), cfg)
    meta = safe_open(str(new), "pt").metadata()
    assert meta["format_version"] == "2"
    assert json.loads(meta["model_spec"])["spec_version"] == SPEC_VERSION
    assert export_training_config(new) == json.dumps(cfg.to_dict())


def test_a_renamed_model_field_is_migrated(tmp_path, monkeypatch):
    import stackgan.checkpoint as ck

    cfg = ExperimentConfig()
    cfg = type(cfg)(model=type(cfg.model)(ngf=4, z_dim=8, cond_dim=8))
    spec = ck.model_spec(cfg)
    spec["model"]["noise_dim"] = spec["model"].pop("z_dim")  # as an older spec named it
    spec["spec_version"] = 0

    def rename(old: dict) -> dict:
        model = dict(old["model"])
        model["z_dim"] = model.pop("noise_dim")
        return {**old, "model": model, "spec_version": 1}

    monkeypatch.setitem(ck.SPEC_MIGRATIONS, 0, rename)
    assert ck.config_from_spec(spec).model == cfg.model
    newer = {**ck.model_spec(cfg), "spec_version": ck.SPEC_VERSION + 1}
    with pytest.raises(CheckpointError, match="upgrade"):
        ck.config_from_spec(newer)
