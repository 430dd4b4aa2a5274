"""Networks: shared layers, Conditioning Augmentation, StackGAN v1 stages, the StackGAN++ tree,
one discriminator for every size, and the factories that build them from a config."""

from stackgan.config_checks import image_sizes
from stackgan.models.conditioning import CondAugment, kl_divergence
from stackgan.models.discriminator import Discriminator
from stackgan.models.registry import (
    build_discriminators,
    build_generator,
    output_size,
)
from stackgan.models.v1 import GeneratorOutput, Stage1Generator, Stage2Generator
from stackgan.models.v2 import TreeGenerator

__all__ = [
    "CondAugment",
    "Discriminator",
    "GeneratorOutput",
    "Stage1Generator",
    "Stage2Generator",
    "TreeGenerator",
    "build_discriminators",
    "build_generator",
    "image_sizes",
    "kl_divergence",
    "output_size",
]
