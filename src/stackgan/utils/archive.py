"""Bounded reads of zip files: checkpoints and state dicts (``torch.save``'s zip format) and
dataset packs.

A zip record declares its uncompressed size, and both Python's ``zipfile`` and the reader inside
``torch.load`` stop at that size (torch allocates exactly that much per record). So a zip bomb is
refused by its declared sizes, from the central directory, before one byte is inflated: a record
may inflate to at most ``MAX_RATIO`` times its compressed size (torch and our packs store records
uncompressed, ratio 1; a re-zipped file of real weights compresses about 1.1x), and the whole
archive to at most ``MAX_RATIO`` times the file's size.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from stackgan.errors import StackGANError

MAX_RATIO = 20  # inflated / compressed bytes; deflated zeros reach 1000x
_SLACK = 1 << 16  # tiny records (a 4-byte version file) may compress badly either way


class ArchiveError(StackGANError, ValueError):
    """A zip whose records claim more data than its bytes can hold."""


def check_zip_sizes(path: str | Path) -> None:
    """Raise :class:`ArchiveError` when a record of the zip ``path`` would inflate beyond
    ``MAX_RATIO`` times its compressed size, or all records beyond ``MAX_RATIO`` times the
    file. Not a zip: nothing to check (the caller's reader reports it)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    total = 0
    for info in infos:
        if info.file_size > MAX_RATIO * info.compress_size + _SLACK:
            raise ArchiveError(
                f"{path}: record {info.filename} would inflate {info.compress_size} bytes to "
                f"{info.file_size} (over {MAX_RATIO}x: a decompression bomb?)"
            )
        total += info.file_size
    size = path.stat().st_size
    if total > MAX_RATIO * size + _SLACK:
        raise ArchiveError(
            f"{path}: its records inflate to {total} bytes from a {size}-byte file (over "
            f"{MAX_RATIO}x: a decompression bomb?)"
        )


def read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of record ``name``, at most ``limit`` of them: the declared size is checked
    first, and the stream is read in chunks that stop at the limit whatever it declares.
    ``KeyError`` for a missing record, :class:`ArchiveError` for one too large."""
    info = zf.getinfo(name)
    if info.file_size > limit or info.file_size > MAX_RATIO * info.compress_size + _SLACK:
        raise ArchiveError(
            f"record {name} inflates to {info.file_size} bytes (from {info.compress_size}; the "
            f"limit is {limit} and {MAX_RATIO}x)"
        )
    chunks: list[bytes] = []
    got = 0
    with zf.open(info) as f:
        while chunk := f.read(1 << 20):
            got += len(chunk)
            if got > limit:
                raise ArchiveError(f"record {name} inflates past {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)
