"""Image conversion, grids and saving with PIL/numpy (no torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stackgan.utils.cache import atomic_write


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
