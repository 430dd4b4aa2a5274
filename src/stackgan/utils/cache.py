"""Atomic file writes, safetensors reads, and on-disk array caches (decoded images, Inception
features) built once and written that way."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from stackgan.errors import StackGANError

logger = logging.getLogger(__name__)


class WriteError(StackGANError, OSError):
    """A file that could not be written, naming it and the cause (disk full, permissions, ...);
    the previous file under that name, if any, is intact."""

    def __init__(self, errno_: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


LOW_SPACE = 1 << 20  # a failed write with less free than this is taken for a full disk
TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: leave its file alone
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries that :func:`atomic_write` left in ``folder`` when its process was
    killed mid-write (``.NAME.tmpPID`` whose PID is no longer running); returns them."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = TMP_PATTERN.match(p.name)
        if m and p.is_file() and (int(m["pid"]) == os.getpid() or not _pid_alive(int(m["pid"]))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write(
    path: str | Path, write: Callable[[Path], object], backup: str | Path | None = None
) -> None:
    """Create ``path`` through ``write(tmp)`` on a hidden temporary sibling, fsync, then rename
    over ``path``. The rename is atomic (POSIX and Windows), so a crash mid-write leaves the
    previous file intact and never a truncated one under the real name; a failed write leaves
    no temporary behind and raises :class:`WriteError` naming ``path`` and the cause. The file
    gets the usual permissions (0666 minus the umask), not the 0600 that some writers give
    temporaries.

    ``backup``: once the new file is complete, the existing ``path`` is renamed to this name
    first (so a bad new file is never the only copy)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(
            exc.errno or 5, f"cannot create the folder of {path}: {exc.strerror}"
        ) from exc
    tmp = _tmp_name(path)
    try:
        try:
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (OSError, RuntimeError, SafetensorError) as exc:
            # a failed write: torch.save (RuntimeError) and safetensors wrap ENOSPC in their own
            # types. Anything else (a dataset error while packing, say) propagates as it is.
            raise _write_error(path, exc) from exc
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if backup is not None and path.exists():
            _keep_backup(path, Path(backup))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _keep_backup(path: Path, backup: Path) -> None:
    """Make ``backup`` the current ``path`` while ``path`` stays in place (a hard link renamed
    over ``backup``), so a crash at any moment leaves a file under both names; where the file
    system has no hard links, the current file is renamed (a crash then may leave only
    ``backup``, which resume falls back to)."""
    link = _tmp_name(backup)
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, backup)
    except OSError:
        link.unlink(missing_ok=True)
        os.replace(path, backup)


def _write_error(path: Path, exc: Exception) -> WriteError:
    """One line naming the file and the cause; a full disk is said as such even when the
    writer's own message hides it."""
    errno_ = getattr(exc, "errno", None)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = -1
    text = str(exc)  # torch.save and safetensors report ENOSPC inside their own messages
    if errno_ == errno.ENOSPC or "No space left" in text or "os error 28" in text:
        return WriteError(errno.ENOSPC, f"cannot write {path}: no space left on device")
    if 0 <= free < LOW_SPACE:  # torch.save may say only "file write failed"
        return WriteError(
            errno.ENOSPC,
            f"cannot write {path}: no space left on device ({free} bytes free; "
            f"{type(exc).__name__}: {text})",
        )
    cause = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
    return WriteError(errno_ or 5, f"cannot write {path}: {cause}")


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


def atomic_torch_save(obj: Any, path: str | Path, backup: str | Path | None = None) -> None:
    """``torch.save`` through :func:`atomic_write` (``backup``: see there)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write, backup=backup)


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
