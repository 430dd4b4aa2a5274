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

# Ten sentences in no caption file of birds-cub50 (checked with grep -xF against every caption):
# the demo's birds gallery, the web page's examples and the model card's samples.
BIRDS_EXAMPLES = (
    "this small bird has a red head and a white belly",
    "a bright yellow bird with black wings and a short pointed beak",
    "this bird is completely black with a long tail and a thick beak",
    "a tiny bird with a blue crown a grey back and an orange breast",
    "this bird has a white body with grey wings and a long hooked orange beak",
    "a brown bird with white spots on its wings and a pale speckled chest",
    "this large bird has a black head a white neck and a long yellow bill",
    "a green bird with a red throat and a very long thin beak",
    "this bird has bright red feathers all over and a black face",
    "a small grey bird with a black cap and white cheeks perched on a branch",
)
# stackgan eval --model birds --data ../shared/data/birds-cub50 --num-samples 2000: at 256 px,
# and (its Stage-I, the model before the Stage-II was added) at 64 px
BIRDS_METRICS = {
    "FID (256 px)": "179.3",
    "FID (64 px)": "114.3",
    "R-precision": "0.069",
    "IS (256 px)": "4.02",
}

# Ten sentences in no caption file of flowers102 (checked with grep -xF against all 81,890): five
# name training classes, five the 20 test classes the model never saw (drawn zero-shot from the
# MiniLM embedding of their names). Its captions are templates naming the class, so a sentence
# steers the kind of flower; other words (colour, place) mean little to it.
FLOWERS_SEEN = 5
FLOWERS_EXAMPLES = (
    "a pink primrose seen from above",
    "a red rose after the rain",
    "a passion flower with its petals wide open",
    "an english marigold in full bloom",
    "a water lily floating on a pond",
    "a sunflower standing tall in a field",
    "a tiger lily with spotted petals",
    "a common dandelion on a lawn",
    "a californian poppy in the afternoon sun",
    "a wild pansy among the leaves",
)
# stackgan eval --model flowers --data ../shared/data/flowers102 --num-samples 2000 --split
# train (the 82 training classes) and --split test (the 20 classes never trained on), 256 px
FLOWERS_METRICS = {
    "FID, training classes (256 px)": "56.7",
    "FID, unseen test classes (256 px)": "79.5",
}


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
    examples: tuple[str, ...] = ()  # sentences in none of the dataset's captions (demo, page)

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
            examples=(
                "a big red star on a sky blue background",
                "a tiny violet circle on the left, on a beige background",
            ),
        ),
        PretrainedModel(
            name="birds",
            file="birds-v1.safetensors",
            dataset="birds-cub50 (real CUB-200-2011 photographs, classes 001-050; "
            "non-commercial research use)",
            resolution=256,
            description="StackGAN v1, Stage-I 64 px at half the paper's width + a reduced "
            "Stage-II 256 px, trained 90 + 70 min on a 2-core CPU, trained birds text encoder",
            card="docs/models/birds-v1.md",
            metrics=BIRDS_METRICS,
            examples=BIRDS_EXAMPLES,
        ),
        PretrainedModel(
            name="flowers",
            file="flowers-v2.safetensors",
            dataset="flowers102 (the 8,189 Oxford-102 photographs, 82 training classes; "
            "captions are templates naming the class)",
            resolution=256,
            description="StackGAN++, a tree of three branches (64, 128, 256 px) at ngf 32 with "
            "a discriminator on frozen EfficientNet-Lite0 features, trained 141 min on one "
            "CPU thread, MiniLM text encoder",
            card="docs/models/flowers-v2.md",
            metrics=FLOWERS_METRICS,
            examples=FLOWERS_EXAMPLES,
        ),
    )
}


def is_bundled_name(name_or_path: str | Path) -> bool:
    """Whether ``--model`` names a bundled model: one of the names, written without a folder
    (``birds``; a file or folder of that name in the working directory is ``./birds``)."""
    return str(name_or_path) in PRETRAINED  # (no name holds a folder separator)


def resolve_model(name_or_path: str | Path | None) -> Path:
    """The export file for a bundled model's name or a path (None: the default model).

    A bundled name always means the bundled model (``./NAME`` is the file of that name); a
    bare word that is no bundled name and no existing file is an error that lists the names."""
    if name_or_path is None:
        return PRETRAINED[DEFAULT_MODEL].path
    if is_bundled_name(name_or_path):
        return PRETRAINED[str(name_or_path)].path
    path = Path(name_or_path)
    if not path.exists() and path.suffix == "" and "/" not in str(name_or_path):
        names = ", ".join(sorted(PRETRAINED))
        raise CheckpointError(
            f"unknown model {str(name_or_path)!r}: bundled models are {names}, "
            "or give the path of an export (.safetensors)"
        )
    return path
