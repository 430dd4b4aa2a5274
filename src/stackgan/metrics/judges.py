"""Dataset judges: what a dataset with known truth behind each caption can say about the
images generated from its captions.

A judge is registered once, with a test on the dataset folder (and a name for the models
trained on it); every consumer (the ``consistency`` and ``attributes`` metrics, the captions the
metrics generate from, the matcher's class masking, ``stackgan consistency``, the demo, the
served page's example captions) asks :func:`judge_for` or :func:`judge_named` and never tests
for a dataset itself. A second synthetic dataset with its own judge is one module and one
:func:`register_judge` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stackgan.data.shapes import is_shapes_root
from stackgan.metrics.shapes_judge import ShapesJudge

JudgedCaption = tuple[str, Any, bool]  # (caption, the truth it states, compositional)


class Judge(Protocol):
    """What the package asks of a dataset's judge.

    Attributes:
        name: the dataset's name (``data.name`` of the models trained on it).
        class_mask: whether two captions of one class describe each other's images, so that
            same-class pairs are no negatives when training a text-image matcher.
    """

    name: str
    class_mask: bool

    def captions(
        self, root: str | Path, split: str = "test", num: int = 0, seed: int = 0
    ) -> list[JudgedCaption]:
        """Captions of ``split`` the judge can check (one per image, chosen by ``seed``; the
        first ``num``, 0 for all), each with its truth and whether it is compositional."""
        ...

    def score(self, images: list[np.ndarray], items: list[JudgedCaption]) -> dict[str, Any]:
        """(H, W, 3) uint8 images, one per item -> the judge's detailed result."""
        ...

    def summary(self, detail: dict[str, Any]) -> tuple[float, dict[str, float | None]]:
        """:meth:`score`'s result -> (headline score, higher is better; named parts)."""
        ...

    def describe(self, image: np.ndarray, truth: Any) -> tuple[bool, str]:
        """One image against its caption's truth -> (right, what the judge saw)."""
        ...

    def attributes(
        self,
        images: list[np.ndarray],
        items: list[JudgedCaption],
        root: str | Path,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Per-attribute accuracy of the images (a learned judge), with its real-image scale."""
        ...

    def example_captions(self, num: int, exclude: list[str]) -> list[str]:
        """Up to ``num`` example sentences in the dataset's own words, none in ``exclude``."""
        ...


@dataclass(frozen=True)
class _Entry:
    name: str
    matches: Callable[[Path], bool]
    factory: Callable[[], Judge]


_JUDGES: list[_Entry] = []


def register_judge(
    name: str, matches: Callable[[Path], bool], factory: Callable[[], Judge]
) -> None:
    """Register the judge built by ``factory`` for dataset folders where ``matches(root)`` holds
    and for models whose ``data.name`` is ``name``."""
    _JUDGES.append(_Entry(name, matches, factory))


def judge_for(root: str | Path) -> Judge | None:
    """The judge of the dataset folder ``root``, or None when it has none."""
    for entry in _JUDGES:
        if entry.matches(Path(root)):
            return entry.factory()
    return None


def judge_named(name: str) -> Judge | None:
    """The judge registered under a dataset name (a model's ``data.name``), or None."""
    for entry in _JUDGES:
        if entry.name == name:
            return entry.factory()
    return None


register_judge("shapes", is_shapes_root, ShapesJudge)
