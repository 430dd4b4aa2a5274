import pytest
import torch
from safetensors.torch import save_file

from stackgan.checkpoint import (
    CheckpointError,
    export_generator,
    load_checkpoint,
    load_export,
    save_checkpoint,
)
from stackgan.config import ExperimentConfig
from stackgan.models.registry import build_generator
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
