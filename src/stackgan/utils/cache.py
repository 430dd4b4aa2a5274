"""On-disk array caches (decoded images, Inception features): built once, written atomically."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def cached_array(
    path: Path, shape_ok: Callable[[tuple[int, ...]], bool], build: Callable[[], np.ndarray]
) -> np.ndarray:
    """The array at ``path`` when it reads and ``shape_ok(shape)``; otherwise ``build()``, saved
    to ``path`` through a temporary file and a rename (a crash never leaves a half-written
    cache)."""
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r")
            if shape_ok(arr.shape):
                return np.array(arr)  # into memory: callers index it at random
        except (ValueError, OSError):
            pass
        logger.warning("cache %s is unreadable or stale; rebuilding it", path)
    arr = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return arr
