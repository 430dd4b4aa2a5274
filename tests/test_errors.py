"""stackgan.errors (issue 29, point 4): one base for the errors the CLI reports as one line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from stackgan.checkpoint import CheckpointError
from stackgan.cli import main
from stackgan.config import ConfigError
from stackgan.convert import ConvertError
from stackgan.data.io import DatasetError
from stackgan.errors import StackGANError, TrainingError
from stackgan.metrics.base import MetricError
from stackgan.text.base import CaptionError, TextEncoderError
from stackgan.train.rundir import RunDirError
from stackgan.utils.cache import WriteError
from stackgan.utils.runtime import DeviceError
from stackgan.utils.textio import TextFileError

CLI = Path(__file__).resolve().parents[1] / "src" / "stackgan" / "cli" / "__init__.py"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ConfigError, ValueError),
        (DatasetError, ValueError),
        (CheckpointError, ValueError),
        (ConvertError, ValueError),
        (TextEncoderError, ValueError),
        (CaptionError, ValueError),
        (DeviceError, ValueError),
        (TextFileError, ValueError),
        (MetricError, RuntimeError),
        (TrainingError, RuntimeError),
        (RunDirError, FileExistsError),
        (WriteError, OSError),
    ],
)
def test_every_error_is_a_stackgan_error_and_keeps_its_builtin_base(error, builtin):
    assert issubclass(error, StackGANError) and issubclass(error, builtin)


def test_the_cli_handler_imports_no_training_code():
    tree = ast.parse(CLI.read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "stackgan.errors" in modules
    assert not {m for m in modules if m and m.startswith("stackgan.train")}


def test_a_stackgan_error_is_one_line(monkeypatch):
    import stackgan.pretrained

    class Broken(dict):
        def values(self):
            raise MetricError("the judge is missing")  # a RuntimeError: once a traceback

    monkeypatch.setattr(stackgan.pretrained, "PRETRAINED", Broken())
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 1 and "MetricError: the judge is missing" in r.output
    assert "Traceback" not in r.output
