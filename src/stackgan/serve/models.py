"""The models a server holds: loaded once at start-up, with what the API says about them.

A bundled model's name (``shapes``, ``birds``, ``flowers``) selects it; any other name is the
path of an export (``.safetensors``, written by ``stackgan export`` or ``train``), served under
its file stem.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgan.checkpoint import CheckpointError
from stackgan.pretrained import FLOWERS_SEEN, PRETRAINED, is_bundled_name
from stackgan.sampling import Text2ImageSampler
from stackgan.serve.batching import GenRequest, generate_batch

logger = logging.getLogger(__name__)

# Captions in each dataset's own words, for the web page's examples: a bundled model's own
# examples (stackgan.pretrained; flowers: three seen classes, three unseen). A dataset with a
# judge (`shapes`) adds captions drawn by its own caption generator, in its vocabulary.
_FLOWERS = PRETRAINED["flowers"].examples
EXAMPLES: dict[str, list[str]] = {
    "shapes": list(PRETRAINED["shapes"].examples),
    "birds": list(PRETRAINED["birds"].examples[:6]),
    "flowers": [*_FLOWERS[:3], *_FLOWERS[FLOWERS_SEEN : FLOWERS_SEEN + 3]],
}


@dataclass
class ModelEntry:
    """A loaded model and its description.

    Attributes:
        name: the name requests use.
        sampler: the loaded sampler (the only thing that makes images).
        source: ``bundled`` or the export's file name.
        examples: example captions from the model's dataset (empty for an unconditional model).
        stage_sizes: each stage's resolution, lowest first.
    """

    name: str
    sampler: Text2ImageSampler
    source: str
    examples: list[str] = field(default_factory=list)
    stage_sizes: list[int] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about this model."""
        cfg = self.sampler.cfg
        return {
            "name": self.name,
            "source": self.source,
            "resolution": self.sampler.resolution,
            "stages": self.stage_sizes,
            "dataset": cfg.data.name,
            "text_encoder": self._encoder_name(),
            "version": cfg.model.version,
            "conditional": self.sampler.conditional,
            "examples": self.examples,
        }

    def _encoder_name(self) -> str | None:
        """``minilm``, ``precomputed``, or ``trained-<digest>`` for an encoder that travels
        in the model file (never the path it was trained at: that names a developer's disk)."""
        if not self.sampler.conditional:
            return None
        enc = self.sampler.encoder
        return str(enc.name) if enc is not None else self.sampler.cfg.text.encoder


def example_captions(dataset: str, num: int = 6) -> list[str]:
    """Example captions for a model trained on ``dataset`` (may be empty): its own, then, where
    the dataset has a judge (:mod:`stackgan.metrics.judges`), sentences in its own words."""
    out = list(EXAMPLES.get(dataset, []))
    if len(out) < num:
        from stackgan.metrics.judges import judge_named

        judge = judge_named(dataset)
        if judge is not None:
            out += judge.example_captions(num - len(out), out)
    return out[:num]


def model_name(spec: str) -> str:
    """The name a ``--model`` value is served under: a bundled model's own name, else the
    export file's stem."""
    return spec if is_bundled_name(spec) else Path(spec).stem


def load_model(spec: str, device: str = "cpu") -> ModelEntry:
    """Load one model (a bundled model's name or an export path) and warm it up with one image.

    Raises:
        FileNotFoundError: no such export file.
        CheckpointError: the file is not a usable export.
    """
    path = Path(spec)
    if is_bundled_name(spec):
        sampler = Text2ImageSampler.from_pretrained(spec, device=device)
        source = f"bundled ({PRETRAINED[spec].file})"
    else:
        if not path.is_file():
            names = ", ".join(sorted(PRETRAINED))
            raise FileNotFoundError(
                f"--model {spec}: no such file (give a bundled model's name, {names}, or an export)"
            )
        sampler = Text2ImageSampler.from_pretrained(path, device=device)
        source = path.name
    if sampler.conditional and sampler.cfg.text.encoder == "precomputed":
        raise CheckpointError(
            f"--model {spec}: this model reads the original char-CNN-RNN embeddings "
            "(text.encoder: precomputed) and cannot encode typed sentences, which the page and "
            "the API send; sample it with `stackgan sample --model FILE --embeddings FILE.t7`"
        )
    examples = example_captions(sampler.cfg.data.name) if sampler.conditional else []
    # one image at start-up: the first request is not the one that pays for the warm-up
    warm = GenRequest(
        [examples[0] if examples else "a photo"] if sampler.conditional else None, 1, 0
    )
    generate_batch(sampler, [warm])
    return ModelEntry(model_name(spec), sampler, source, examples, sampler.stage_sizes)


def load_models(specs: Sequence[str], device: str = "cpu") -> dict[str, ModelEntry]:
    """Load every ``--model`` once, in order (the first is the default).

    Raises:
        ValueError: no model, or two models with the same name.
    """
    if not specs:
        raise ValueError("no model given")
    names = [model_name(s) for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two --model values have the same name: {', '.join(dup)}")
    out: dict[str, ModelEntry] = {}
    for spec in specs:
        entry = load_model(spec, device)
        logger.info(
            "model %s: %s, %d px, dataset %s",
            entry.name,
            entry.source,
            entry.sampler.resolution,
            entry.sampler.cfg.data.name,
        )
        out[entry.name] = entry
    return out
