"""stackgan: text-to-image synthesis with Stacked GANs (StackGAN, StackGAN++)."""

__version__ = "0.1.0"

from stackgan.config import ExperimentConfig, load_config

__all__ = ["ExperimentConfig", "__version__", "load_config"]
