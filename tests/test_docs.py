"""Every command in the README and the guides under docs/ runs as written.

Each ``stackgan ...`` line of a ```bash block is parsed by the real command line (the command,
its options and their types), and each ``stackgan train`` resolves its config with its
``--set`` overrides, which is what ``--dry-run`` does. Benchmark scripts and make targets must
exist. The Python blocks of the README and the sampling guide are run. The lab notebook
(docs/experiments/) is a record, not a guide, and is left out.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from stackgan.cli import main
from stackgan.config import load_config

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GUIDES += sorted((ROOT / "docs" / "models").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for path in GUIDES:
        for m in FENCE.finditer(path.read_text()):
            if m.group(1) == lang:
                out.append((path.relative_to(ROOT).as_posix(), m.group(2)))
    return out


def _commands() -> list[tuple[str, list[str]]]:
    cmds = []
    for where, block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if "$" in line:  # shell variables: an example's own setup, not a runnable line
                continue
            words = shlex.split(line, comments=True)
            if words:
                cmds.append((where, words))
    return cmds


COMMANDS = _commands()


def test_the_guides_have_commands():
    firsts = {Path(w[0]).name for _, w in COMMANDS}
    assert {"stackgan", "make"} <= firsts
    assert sum(Path(w[0]).name == "stackgan" for _, w in COMMANDS) >= 30


def _parse(args: list[str]) -> tuple[click.Command, click.Context]:
    """The command ``args`` names and its parsed context, without running it."""
    ctx = main.make_context("stackgan", list(args))
    cmd: click.Command = main
    while isinstance(cmd, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, args
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return cmd, ctx


@pytest.mark.parametrize(
    ("where", "words"), COMMANDS, ids=[f"{w}:{' '.join(c)[:60]}" for w, c in COMMANDS]
)
def test_documented_command_runs_as_written(where, words, monkeypatch):
    monkeypatch.chdir(ROOT)
    prog = Path(words[0]).name
    if prog == "torchrun":  # torchrun [its flags] -m stackgan ARGS: the stackgan part
        at = words.index("stackgan")
        assert words[at - 1] == "-m", words
        words, prog = words[at:], "stackgan"
    if prog == "stackgan":
        cmd, ctx = _parse(words[1:])
        if (
            cmd.name == "train" and ctx.parent is not None and ctx.parent.parent is None
        ):  # --dry-run: the config and every --set resolve
            load_config(ctx.params["config"], list(ctx.params["overrides"]))
    elif prog == "make":  # its targets exist, and each VAR=value names a variable it reads
        makefile = (ROOT / "Makefile").read_text()
        targets = re.findall(r"^([\w-]+):", makefile, re.M)
        variables = [w.split("=", 1)[0] for w in words[1:] if "=" in w]
        assert all(t in targets for t in words[1:] if "=" not in t), words
        assert all(f"$({v})" in makefile for v in variables), words
    elif prog == "source":  # activating the venv the Makefile creates
        assert (
            words[1:] == [".venv/bin/activate"]
            and "VENV   ?= .venv" in (ROOT / "Makefile").read_text()
        ), words
    elif prog.startswith("python") and words[1:2] == ["-c"]:  # a one-liner: it compiles
        compile(words[2], where, "exec")
    elif prog.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
        assert (ROOT / words[1]).is_file(), words
    elif prog == "bash" and len(words) > 1:  # a project script: it exists and parses
        script = ROOT / words[1]
        assert script.is_file(), words
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    elif prog.startswith("python") and words[1:2] == ["-m"] and words[2].startswith("research."):
        assert (ROOT / (words[2].replace(".", "/") + ".py")).is_file(), words
    elif "pip" in prog or (prog.startswith("python") and "-m" in words):
        pass  # installs: exercised by `make` itself
    else:
        pytest.fail(f"{where}: a command the docs test does not know: {' '.join(words)}")


@pytest.mark.parametrize(
    "where", sorted({w for w, _ in _blocks("python")}), ids=lambda w: w.replace("/", "-")
)
def test_documented_python_runs(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for w, code in _blocks("python"):
        if w == where:
            exec(compile(code, f"{where} (python block)", "exec"), {"__name__": "docs"})
    assert os.listdir(tmp_path) or where != "README.md"  # the README's block saves an image
