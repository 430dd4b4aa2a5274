"""What every hostile-input test asserts: one error line (no traceback), and bounded memory
and time while the input is refused."""

from __future__ import annotations

import resource
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from click.testing import CliRunner

from stackgan.cli import main

MAX_MB = 300  # "a few hundred MB" (the reproductions reached 2.2-3.5 GB)
MAX_SECONDS = 5  # of CPU time (a loaded machine stretches wall time); each case takes ms


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def assert_one_line(result: Any, *needles: str) -> str:
    """A CLI run that failed with one ``Error: ...`` line naming the problem, no traceback."""
    out = result.output
    assert result.exit_code in (1, 2), (result.exit_code, out, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out, out
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, out
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@contextmanager
def bounded(max_mb: float = MAX_MB, max_seconds: float = MAX_SECONDS) -> Iterator[None]:
    """Peak Python/numpy allocations (tracemalloc), growth of the peak RSS (torch and C code)
    and the CPU time of the block, each under its bound."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.process_time()
    try:
        yield
    finally:
        elapsed = time.process_time() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert peak < max_mb, f"{peak:.0f} MB allocated"
    assert rss < max_mb, f"peak RSS grew by {rss:.0f} MB"
    assert elapsed < max_seconds, f"{elapsed:.1f} s of CPU"
