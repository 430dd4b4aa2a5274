"""stackgan: text-to-image synthesis with Stacked GANs (StackGAN, StackGAN++)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from stackgan.config import ExperimentConfig, load_config

if TYPE_CHECKING:
    from stackgan.sampling import Text2ImageSampler

__all__ = ["ExperimentConfig", "Text2ImageSampler", "__version__", "load_config"]

# Imported on first use: ``import stackgan`` (the CLI's ``--version``, a config check) stays
# light, and ``from stackgan import Text2ImageSampler`` loads torch and the models then.
_LAZY = {"Text2ImageSampler": "stackgan.sampling"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stackgan' has no attribute {name!r}")
