"""Open a report in headless Chromium: a screenshot, and a check that its images decode.

The report carries a small script that, once the page has loaded, records on ``<body>`` how
many of its images decoded (``data-images-loaded`` of ``data-images-total``); Chromium's
``--dump-dom`` prints the page after that script ran. Uses Debian's ``chromium`` package (the
Makefile's test setup installs it where it can); nothing is downloaded at run time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 120
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]


class BrowserError(RuntimeError):
    """No browser, or the browser failed on the page."""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def _run(args: list[str]) -> str:
    browser = find_chromium()
    if browser is None:
        raise BrowserError("no chromium found (Debian: apt-get install chromium)")
    try:
        done = subprocess.run(
            [browser, *_FLAGS, *args], capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise BrowserError(f"chromium did not finish in {TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise BrowserError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def check_report(html: str | Path, screenshot: str | Path, width: int = 1280) -> tuple[int, int]:
    """Render ``html`` to ``screenshot`` (PNG) and return (images decoded, images in the page)."""
    url = Path(html).resolve().as_uri()
    dom = _run(["--virtual-time-budget=10000", "--dump-dom", url])
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    if loaded is None or total is None:
        raise BrowserError(f"{html}: the page's image check did not run")
    shot = Path(screenshot).resolve()
    _run(
        [f"--screenshot={shot}", f"--window-size={width},2000", "--virtual-time-budget=10000", url]
    )
    if not shot.exists():
        raise BrowserError(f"chromium wrote no screenshot to {shot}")
    return int(loaded.group(1)), int(total.group(1))
