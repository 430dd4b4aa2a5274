import pytest
import torch
import torch.nn.functional as F

from stackgan.checkpoint import CheckpointError
from stackgan.config import ConfigError
from stackgan.train import train
from stackgan.train.matching import (
    ImageMatcher,
    fit_image_matcher,
    info_nce,
    load_image_matcher,
    save_image_matcher,
)

from .conftest import tiny_config


def test_info_nce_rewards_the_match_and_ignores_duplicate_captions():
    text = torch.randn(8, 16)
    img = F.normalize(text, dim=1)
    loss, acc = info_nce(img, text)
    wrong, wrong_acc = info_nce(img.roll(1, dims=0), text)
    assert acc == 1 and wrong_acc == 0 and loss < 0.1 < wrong
    # two rows with the same caption: neither counts as the other's negative
    text[1] = text[0]
    img = F.normalize(text, dim=1)
    loss_dup, acc_dup = info_nce(img, text, symmetric=True)
    assert acc_dup == 1 and torch.isfinite(loss_dup) and loss_dup < 0.1


def test_fitted_matcher_reads_colour_and_is_frozen():
    # images whose only content is a colour; each colour has its own random text embedding
    palette = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    text_of = torch.randn(4, 8)

    def sample(gen):
        c = torch.randint(4, (16,), generator=gen)
        img = palette[c][:, :, None, None].expand(-1, -1, 16, 16).clone()
        img += 0.1 * torch.randn(img.shape, generator=gen)
        return img, text_of[c]

    before = torch.random.get_rng_state()
    m = fit_image_matcher(sample, 8, 16, steps=150, device=torch.device("cpu"))
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream untouched
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    img, text = sample(torch.Generator().manual_seed(1))
    _, acc = info_nce(m(img), text)
    assert acc == 1, float(acc)  # every image picks a caption of its colour
    assert m.size == 16  # images smaller than 64 are matched at their own size


def test_matcher_file_round_trip_and_bad_file(tmp_path):
    m = ImageMatcher(8, 32)
    save_image_matcher(tmp_path / "m.safetensors", m)
    back = load_image_matcher(tmp_path / "m.safetensors", torch.device("cpu"))
    x = torch.randn(2, 3, 64, 64)  # larger images are downsampled to its size
    assert torch.allclose(back(x), m(x)) and back(x).shape == (2, 8)
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="image matcher"):
        load_image_matcher(tmp_path / "bad.safetensors", torch.device("cpu"))


def test_training_with_the_matching_loss_and_resume(tiny_shapes, tmp_path):
    extra = {"loss.match_weight": 1.0, "loss.match_steps": 3, "train.total_iters": 2}
    run = tmp_path / "run"
    train(tiny_config(tiny_shapes, **extra), run)
    assert (run / "image-matcher.safetensors").exists()
    import json

    rec = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert rec["match"] > 0 and 0 <= rec["match_top1"] <= 1
    assert "fitting the image matcher" in (run / "log.txt").read_text()
    more = tiny_config(tiny_shapes, **{**extra, "train.total_iters": 3})
    train(more, run, resume=run / "checkpoint-latest.pt")
    assert "image matcher from" in (run / "log.txt").read_text()  # read back, not refitted


def test_matching_loss_config_errors(tiny_shapes):
    with pytest.raises(ConfigError, match="match_weight"):
        tiny_config(tiny_shapes, **{"loss.match_weight": -1})
    with pytest.raises(ConfigError, match="match_steps"):
        tiny_config(tiny_shapes, **{"loss.match_steps": 0})
    uncond = {"model.version": "v2", "model.conditional": False, "loss.match_weight": 1.0}
    with pytest.raises(ConfigError, match="match_weight needs text"):
        tiny_config(tiny_shapes, **uncond)
