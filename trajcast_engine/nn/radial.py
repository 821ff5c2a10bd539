"""Radial edge features: a trainable Bessel basis times a smooth polynomial cutoff.

Bessel basis (Gasteiger, Groß & Günnemann, DimeNet, ICLR 2020, eq. 7):
``b_n(r) = sqrt(2 / r_c) * sin(w_n r) / r`` with ``w_n`` initialised to ``n π / r_c``,
n = 1..N, and trainable.

Polynomial envelope (same paper, eq. 8) with ``x = r / r_c`` and exponent ``p``:
``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` for ``x < 1`` and 0
beyond; ``u`` and its first ``p - 1`` derivatives vanish at the cutoff, so energies and
forces stay continuous as a neighbour crosses it. Lengths in Å.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class BesselBasis(nn.Module):
    """``num_basis`` Bessel functions on [0, cutoff] with trainable frequencies."""

    def __init__(self, cutoff: float, num_basis: int = 8, trainable: bool = True) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.prefactor = math.sqrt(2.0 / self.cutoff)
        weights = torch.arange(1, num_basis + 1) * math.pi / self.cutoff
        self.frequencies = nn.Parameter(weights, requires_grad=trainable)

    def forward(self, r: Tensor) -> Tensor:
        """(E,) distances -> (E, num_basis)."""
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r) / r


class PolynomialCutoff(nn.Module):
    """Smooth envelope that falls from 1 at r = 0 to 0 at the cutoff."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: Tensor) -> Tensor:
        p, x = self.p, r / self.cutoff
        envelope = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x**p
            + p * (p + 2.0) * x ** (p + 1.0)
            - p * (p + 1.0) / 2.0 * x ** (p + 2.0)
        )
        return envelope * (x < 1.0)


class RadialEmbedding(nn.Module):
    """(E,) distances -> (E, num_basis) Bessel features times the cutoff envelope."""

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 6) -> None:
        super().__init__()
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialCutoff(cutoff, p)

    def forward(self, r: Tensor) -> Tensor:
        return self.basis(r) * self.envelope(r).unsqueeze(-1)


class GaussianBasis(nn.Module):
    """``num_basis`` fixed Gaussians evenly spaced on [0, maximum] (TrajCast's speed
    embedding, Thiemann et al., arXiv 2503.23794):

    ``g_k(s) = exp(-(s - μ_k)² / (2 σ²))``, ``μ_k = k · maximum / (num_basis - 1)``,
    ``σ = maximum / (num_basis - 1)``. Values beyond ``maximum`` fade smoothly to 0.
    """

    def __init__(self, maximum: float, num_basis: int = 8) -> None:
        super().__init__()
        if not maximum > 0 or num_basis < 2:
            raise ValueError(f"need maximum > 0 and num_basis >= 2, got {maximum}, {num_basis}")
        self.register_buffer("centers", torch.linspace(0.0, float(maximum), num_basis))
        self.width = float(maximum) / (num_basis - 1)

    def forward(self, s: Tensor) -> Tensor:
        """(N,) values -> (N, num_basis)."""
        return torch.exp(-0.5 * ((s.unsqueeze(-1) - self.centers) / self.width) ** 2)
