"""Image conversion, grids and saving with PIL/numpy (no torchvision)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from stackgan.errors import StackGANError
from stackgan.utils.cache import atomic_write

# The only formats the project reads. PIL would otherwise try every plugin it has: an EPS file
# named .jpg makes it launch Ghostscript, an external PostScript interpreter.
IMAGE_FORMATS = ("JPEG", "PNG")


class ImageFileError(StackGANError, ValueError):
    """An image file that is not a readable JPEG or PNG, or too large to decode safely."""


def open_image(
    source: str | Path | BinaryIO, name: str = "", size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode a JPEG or PNG to RGB; nothing else is opened. ``size``: the (width, height) it must
    have, checked from the header before decoding. Every failure is an :class:`ImageFileError`
    naming ``name`` (default: the path); ``FileNotFoundError`` passes through."""
    name = name or str(source)
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as im:
            if size is not None and im.size != size:
                raise ImageFileError(
                    f"{name}: a {im.size[0]}x{im.size[1]} image, expected {size[0]}x{size[1]}"
                )
            rgb: Image.Image = im.convert("RGB")  # decodes fully: a truncated file fails here
            return rgb
    except FileNotFoundError:
        raise
    except UnidentifiedImageError:
        raise ImageFileError(f"corrupt or unreadable image: {name} (not a JPEG or PNG)") from None
    except Image.DecompressionBombError as exc:  # a few KB that would decode to gigabytes
        raise ImageFileError(f"image too large to decode safely: {name} ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for damaged data
        if isinstance(exc, ImageFileError):
            raise
        raise ImageFileError(f"corrupt or unreadable image: {name} ({exc})") from None


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest upsampling for display (shows Stage-I pixels as they are)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images.float(), size=(size, size), mode="nearest")


def make_grid(images: np.ndarray, nrow: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one grid image with ``nrow`` images per row."""
    n, h, w, _ = images.shape
    ncol = nrow
    nrows = -(-n // ncol)
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = im
    return grid


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Write a PNG atomically (a crash never leaves a truncated image behind)."""
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
