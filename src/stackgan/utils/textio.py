"""Reading text files that users hand us (caption lists, dataset caption files) strictly: a
file that is not text, or not valid UTF-8, is an error naming the file and the byte, never
silently turned into U+FFFD replacement characters."""

from __future__ import annotations

import codecs
from pathlib import Path

from stackgan.errors import StackGANError

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),  # Windows editors write "Unicode" text with a BOM
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextFileError(StackGANError, ValueError):
    """A text file that cannot be read as text, naming the file and the cause."""


def read_text_file(path: str | Path) -> str:
    """The text of ``path``: UTF-8 (UTF-16 or UTF-8 with a byte-order mark are read too).
    Raises ``FileNotFoundError`` for a missing file and :class:`TextFileError` for binary data
    or invalid UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    encoding = "utf-8"
    for bom, enc in _BOMS:
        if data.startswith(bom):
            encoding = enc
            break
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise TextFileError(
            f"{path} is not {encoding.upper().removesuffix('-SIG')} text (byte "
            f"0x{data[exc.start]:02x} at offset {exc.start} is invalid); save it as UTF-8"
        ) from None
    if "\0" in text:
        raise TextFileError(f"{path} is a binary file, not text (it holds NUL bytes)")
    return text
