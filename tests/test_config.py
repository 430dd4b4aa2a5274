from pathlib import Path

import pytest

from stackgan.config import ConfigError, ExperimentConfig, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_numbers():
    cfg = ExperimentConfig()
    assert cfg.model.z_dim == 100 and cfg.model.cond_dim == 128
    assert cfg.model.ngf == 128 and cfg.model.ndf == 64
    assert cfg.optim.g_lr == 2e-4 and cfg.optim.betas == (0.5, 0.999)
    assert cfg.loss.kl_weight == 2.0 and cfg.loss.wrong_fake_weight == 0.5


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(preset):
    cfg = load_config(preset)
    assert config_from_dict(cfg.to_dict()) == cfg  # round trip through plain data


def test_override_dotted_key_and_type():
    cfg = load_config(None, ["optim.g_lr=1e-4", "train.batch_size=8", "optim.betas=[0.0, 0.9]"])
    assert cfg.optim.g_lr == 1e-4 and cfg.train.batch_size == 8 and cfg.optim.betas == (0.0, 0.9)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"optim\.glr"):
        load_config(None, ["optim.glr=1e-4"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"train\.batch_size.*integer"):
        load_config(None, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match=r"train\.amp"):
        load_config(None, ["train.amp=fp8"])


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="stage"):
        load_config(None, ["model.stage=3"])
    with pytest.raises(ConfigError, match="power of two"):
        load_config(None, ["model.stage1_img_size=48"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("modle:\n  ngf: 4\n")
    with pytest.raises(ConfigError, match="modle"):
        load_config(typo)
