"""Conditioning Augmentation (StackGAN paper, sec. 3.1).

A text embedding phi_t is mapped by a fully connected layer to the mean mu and the log-variance
log sigma^2 of a Gaussian; the conditioning vector is a sample c = mu + sigma * eps. Sampling
many c around one caption smooths the conditioning manifold, and the KL term
KL(N(mu, sigma^2) || N(0, I)) keeps it close to the prior.
"""

from __future__ import annotations

import torch
from torch import nn

from stackgan.models.layers import GLU, LEAKY_SLOPE


class CondAugment(nn.Module):
    """fc(text_dim -> 2 * cond_dim) + activation -> (mu, logvar) -> reparameterised sample.

    Args:
        text_dim: size of the sentence embedding.
        cond_dim: size of c (N_g = 128 in the paper).
        glu: StackGAN++'s variant, fc(text_dim -> 4 * cond_dim) + GLU; otherwise v1's
            fc(text_dim -> 2 * cond_dim) + LeakyReLU(0.2).
        relu: v1 only: a plain ReLU after the fc instead of the leaky one (the PyTorch
            release's ``CA_NET``; ``stackgan convert`` sets it for that release's weights).
    """

    def __init__(self, text_dim: int, cond_dim: int, glu: bool = False, relu: bool = False) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.cond_dim = cond_dim
        self.fc = nn.Linear(text_dim, cond_dim * (4 if glu else 2))
        # The TensorFlow release uses a leaky ReLU after the fc. The later PyTorch release's plain
        # ReLU forces logvar >= 0 (sigma >= 1) and mu >= 0; the issue follows TF where they differ.
        # StackGAN++ gates instead, which leaves mu and logvar free in sign.
        self.act: nn.Module = GLU() if glu else nn.ReLU() if relu else nn.LeakyReLU(LEAKY_SLOPE)

    def forward(
        self, text_emb: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """text_emb (B, text_dim) -> c, mu, logvar, each (B, cond_dim).

        ``noise`` (B, cond_dim) fixes eps; pass zeros to condition on mu alone.
        """
        if text_emb.ndim != 2 or text_emb.shape[1] != self.text_dim:
            raise ValueError(
                f"text embedding must be (B, {self.text_dim}), got {tuple(text_emb.shape)}"
            )
        h = self.act(self.fc(text_emb))  # (B, 2 * cond_dim)
        mu, logvar = h[:, : self.cond_dim], h[:, self.cond_dim :]
        eps = torch.randn_like(mu) if noise is None else noise
        c = mu + torch.exp(0.5 * logvar) * eps
        return c, mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over elements of KL(N(mu, sigma^2) || N(0, 1)); 0 exactly at mu = 0, logvar = 0.

    The reference code averages over batch and dimensions (``torch.mean``), which fixes the scale
    that its lambda = 2 was tuned for.
    """
    return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1.0 - logvar)
