"""The run folder's layout is the one ``train/rundir.py`` names (issue 29, point 3)."""

from __future__ import annotations

import re
from pathlib import Path

from stackgan.train import rundir
from stackgan.train.loop import train

from .conftest import tiny_config

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_a_run_folder_holds_what_rundir_names(tiny_shapes, tmp_path):
    cfg = tiny_config(tiny_shapes, **{"train.total_iters": 2, "train.tick_iters": 1})
    run = tmp_path / "run"
    train(cfg, run)
    names = {p.name for p in run.iterdir()}
    expected = {rundir.LATEST, rundir.EXPORT, rundir.STATS, rundir.CONFIG, rundir.LOG}
    expected |= {rundir.SAMPLES_DIR, rundir.GRID_CAPTIONS}
    assert expected <= names, expected - names
    known = {*rundir.RUN_OUTPUTS, *rundir.RUN_FILES, *rundir.RUN_FOLDERS, rundir.CONFIG}
    assert names <= known, names - known  # nothing written under a name rundir does not own
    grids = sorted(p.name for p in (run / rundir.SAMPLES_DIR).glob(rundir.GRID_GLOB))
    assert grids == [rundir.grid_file(1), rundir.grid_file(2)]
    assert re.fullmatch(rundir.CONFIG_GLOB.replace("*", ".*"), rundir.config_until(5))


def test_the_training_guide_lists_the_run_files():
    guide = (DOCS / "training.md").read_text()
    for name in (*rundir.RUN_OUTPUTS, rundir.CONFIG, rundir.LOG, rundir.GRID_CAPTIONS):
        assert f"`{name}`" in guide, name
    assert f"`{rundir.SAMPLES_DIR}/{rundir.GRID_GLOB}`" in guide
