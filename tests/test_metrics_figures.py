"""metrics/figures.py: the paper's qualitative figures."""

import numpy as np
import torch


def test_paper_figures_have_the_right_layout_and_endpoints(tiny_shapes):
    from stackgan.metrics import figures as F
    from stackgan.models.registry import build_generator
    from stackgan.sampling import Text2ImageSampler

    from .conftest import tiny_config

    cfg = tiny_config(tiny_shapes)
    torch.manual_seed(0)
    sampler = Text2ImageSampler(build_generator(cfg), cfg, encoder=None)
    emb = torch.randn(3, cfg.text.dim)
    grid = F.text_interpolation(sampler, emb[0], emb[1], steps=5, rows=2)
    assert grid.shape == (2 * 16 + 3 * 2, 5 * 16 + 6 * 2, 3)  # 2 rows of 5 tiles of 16 px
    # the first column is caption a itself (CA mean), the last caption b
    z = torch.randn(1, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    a = F._run(sampler, z, emb[0:1], torch.zeros(1, cfg.model.cond_dim))[0]
    b = F._run(sampler, z, emb[1:2], torch.zeros(1, cfg.model.cond_dim))[0]
    assert np.array_equal(grid[2:18, 2:18], a) and np.array_equal(grid[2:18, -18:-2], b)
    on, off = F.ca_ablation(sampler, emb, samples=4)
    assert on.shape == off.shape == (3 * 16 + 4 * 2, 4 * 16 + 5 * 2, 3)
    assert not np.array_equal(on, off)  # eps matters
    assert F.z_interpolation(sampler, emb[:2], steps=3).shape == (2 * 16 + 3 * 2, 3 * 16 + 4 * 2, 3)
    idx = F.nearest_indices(np.eye(3, 4), np.eye(4, 4) * 1.1, k=2)
    assert idx[:, 0].tolist() == [0, 1, 2]
