"""The models shipped inside the package, by name.

``Text2ImageSampler.from_pretrained("shapes")``, ``stackgan sample --model shapes`` and
``stackgan serve --model shapes`` select a bundled model by its name; any other value is a path
to an export. ``stackgan models`` lists them. Each has a model card under ``docs/models/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from stackgan.checkpoint import CheckpointError

DEFAULT_MODEL = "shapes"


@dataclass(frozen=True)
class PretrainedModel:
    """A bundled model: its file under ``stackgan/assets``, what it was trained on, its card
    and headline metrics (measured by the commands in the card)."""

    name: str
    file: str
    dataset: str
    resolution: int
    description: str
    card: str
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(str(resources.files("stackgan") / "assets" / self.file))


PRETRAINED: dict[str, PretrainedModel] = {
    m.name: m
    for m in (
        PretrainedModel(
            name="shapes",
            file="shapes-v1.safetensors",
            dataset="shapes (synthetic, rendered by the package)",
            resolution=256,
            description="StackGAN v1, Stage-I 64 px + Stage-II 256 px, trained text encoder",
            card="docs/models/shapes-v1.md",
            metrics={
                "object colour": "87.6%",
                "background": "99.6%",
                "FID": "198.2",
                "IS": "11.37",
                "R-precision": "0.150",
            },
        ),
    )
}


def resolve_model(name_or_path: str | Path | None) -> Path:
    """The export file for a bundled model's name or a path (None: the default model).

    An existing file wins over a name; a value that is neither a bundled name nor an existing
    file is an error that lists the names."""
    if name_or_path is None:
        return PRETRAINED[DEFAULT_MODEL].path
    path = Path(name_or_path)
    if path.exists() or str(name_or_path) not in PRETRAINED:
        if not path.exists() and path.suffix == "" and "/" not in str(name_or_path):
            names = ", ".join(sorted(PRETRAINED))
            raise CheckpointError(
                f"unknown model {str(name_or_path)!r}: bundled models are {names}, "
                "or give the path of an export (.safetensors)"
            )
        return path
    return PRETRAINED[str(name_or_path)].path
