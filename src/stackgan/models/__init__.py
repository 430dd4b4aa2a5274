"""Networks: shared layers, Conditioning Augmentation, StackGAN v1 stages, factories."""

from stackgan.models.conditioning import CondAugment, kl_divergence
from stackgan.models.registry import build_discriminator, build_generator
from stackgan.models.v1 import Discriminator, GeneratorOutput, Stage1Generator, Stage2Generator

__all__ = [
    "CondAugment",
    "Discriminator",
    "GeneratorOutput",
    "Stage1Generator",
    "Stage2Generator",
    "build_discriminator",
    "build_generator",
    "kl_divergence",
]
