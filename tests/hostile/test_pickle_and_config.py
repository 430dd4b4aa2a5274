"""Crafted split pickles, YAML configs and ``--set`` values (issue 31, points 3, 4 and the
config items of 10 and 12): refused in bounded time and memory, one line each."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from stackgan.config import ConfigError, load_config
from stackgan.utils.safe_pickle import safe_loads

from .bounds import assert_one_line, bounded, cli

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "v1_shapes_stage1.yaml")


def _shared_list_pickle(depth: int) -> bytes:
    """A list holding the same list twice, ``depth`` levels deep: 2^depth paths, ``depth``
    objects, a few hundred bytes."""
    obj: list = []
    for _ in range(depth):
        obj = [obj, obj]
    return pickle.dumps(obj, protocol=2)


def test_shared_references_are_walked_once(tiny_shapes, tmp_path):
    data = _shared_list_pickle(60)
    assert len(data) < 1000  # 435 bytes in the report
    with bounded(max_seconds=2):  # was 9.3 s at 22 levels, doubling per level
        safe_loads(data)  # 60 levels is within MAX_DEPTH (64): plain data, read once
    with bounded(max_seconds=2), pytest.raises(pickle.UnpicklingError, match="nested deeper"):
        safe_loads(_shared_list_pickle(80))
    root = tmp_path / "shapes"
    shutil.copytree(tiny_shapes, root, ignore=shutil.ignore_patterns(".stackgan-cache"))
    (root / "train" / "filenames.pickle").write_bytes(data)
    with bounded(max_seconds=5):
        r = cli("data", "check", str(root))
    assert "expected a list of str" in r.output and "Traceback" not in r.output


def _billion_laughs() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 10)}]")
    return "\n".join(lines) + "\ndata:\n  root: *i\n"


def test_yaml_bombs_and_deep_yaml(tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(_billion_laughs())  # 10^9 strings expanded: was 3.1 GB
    with bounded(), pytest.raises(ConfigError, match="expands to more than"):
        load_config(laughs)
    r = cli("train", str(laughs), "--dry-run")
    assert_one_line(r, "expands to more than")
    deep = tmp_path / "deep.yaml"
    deep.write_text("data: " + "[" * 20_000 + "]" * 20_000 + "\n")  # was a RecursionError
    with bounded(), pytest.raises(ConfigError, match="nested deeper"):
        load_config(deep)
    r = cli("train", str(deep), "--dry-run")
    assert_one_line(r, "nested deeper")


def test_set_values_are_bounded_too():
    with bounded(), pytest.raises(ConfigError, match="nested deeper"):
        load_config(None, ["data.root=" + "[" * 20_000])
    huge = "x" * 5_000_000
    with bounded(), pytest.raises(ConfigError) as exc:
        load_config(None, [f"model.ngf={huge}"])
    assert len(str(exc.value)) < 300  # the message never prints the whole value
    r = cli("train", CONFIG, "--set", "train.num_grid_captions=-5", "--dry-run")
    assert_one_line(r, "train.num_grid_captions must be in 1..64")
    r = cli("train", CONFIG, "--set", "optim.g_lr=.inf", "--dry-run")
    assert_one_line(r, "optim.g_lr: expected a finite number")
    r = cli("train", CONFIG, "--set", f"train.seed={2**70}", "--dry-run")
    assert_one_line(r, "train.seed", "out of range")


def test_non_utf8_config(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    r = cli("train", str(path), "--dry-run")
    assert_one_line(r, "not UTF-8 text", "byte 0xe9")
