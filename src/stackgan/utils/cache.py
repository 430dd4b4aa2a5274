"""Atomic file writes, safetensors reads, and on-disk array caches (decoded images, Inception
features) built once and written that way."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Create ``path`` through ``write(tmp)`` on a hidden temporary sibling, fsync, then rename
    over ``path``. The rename is atomic (POSIX and Windows), so a crash mid-write leaves the
    previous file intact and never a truncated one under the real name; a failed write leaves
    no temporary behind. The file gets the usual permissions (0666 minus the umask), not the
    0600 that some writers give temporaries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_digest(path: str | Path, n: int = 12) -> str:
    """Short SHA-1 of a file's bytes, read in blocks: names a network or an encoder file in
    cache keys and exports."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def read_safetensors(
    path: str | Path, keep: Callable[[str], bool] | None = None
) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and the tensors whose names pass ``keep`` (all when None);
    only those are read. Raises ``SafetensorError``/``OSError`` for a damaged file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = [k for k in f.keys() if keep is None or keep(k)]  # noqa: SIM118 (not a dict)
        return f.metadata() or {}, {k: f.get_tensor(k) for k in keys}


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


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
    atomic_write(path, lambda tmp: _save_npy(tmp, arr))
    return arr


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to a path
        np.save(f, arr)
