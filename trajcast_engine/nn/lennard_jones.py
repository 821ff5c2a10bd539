"""The Lennard-Jones pair potential as a batched torch model, the exact companion of
forecasters trained on Lennard-Jones reference MD (energy rescaling, classic MD).

    E = Σ_{i<j, r_ij < r_c} [ φ(r_ij) - φ(r_c) ],   φ(r) = 4ε [ (σ/r)¹² - (σ/r)⁶ ],

shifted to zero at the cutoff as asap3's ``LennardJones(modified=True)`` and ASE's
``LennardJones(rc=..., smooth=False)`` are (Allen & Tildesley, *Computer Simulation of
Liquids*, 2nd ed., §1.4.3). Each atom carries half of each of its pair energies. One
species, σ in Å, ε in eV, r_c in Å; forces and stress by autograd
(:class:`~trajcast_engine.nn.conservative.ConservativePotential`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.config import DTYPES, SpeciesIndex
from trajcast_engine.nn.conservative import ConservativePotential
from trajcast_engine.nn.scatter import scatter_sum
from trajcast_engine.validation import check_cutoff


@dataclass
class LennardJonesConfig:
    """Parameters of :class:`LennardJonesPotential` (JSON-able)."""

    species: list[int]
    sigma: float  # Å
    epsilon: float  # eV
    cutoff: float  # Å
    dtype: str = "float64"

    def __post_init__(self) -> None:
        self.species = [int(z) for z in self.species]
        if len(self.species) != 1:
            raise ValueError(f"the Lennard-Jones model takes one species, got {self.species}")
        if not (self.sigma > 0 and self.epsilon > 0):
            raise ValueError(f"sigma and epsilon must be > 0, got {self.sigma}, {self.epsilon}")
        self.cutoff = check_cutoff(self.cutoff)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LennardJonesConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown LennardJonesConfig keys: {sorted(unknown)}")
        return cls(**values)


class LennardJonesPotential(ConservativePotential):
    """Shifted Lennard-Jones energy, forces and stress of a batch of systems."""

    kind = "lennard-jones"

    def __init__(self, config: LennardJonesConfig | dict[str, Any]) -> None:
        super().__init__()
        self.config = LennardJonesConfig.from_dict(config) if isinstance(config, dict) else config
        self.species_index = SpeciesIndex(self.config.species)

    def pair_energy(self, r: Tensor) -> Tensor:
        """φ(r) - φ(r_c) in eV for distances ``r`` (Å) below the cutoff."""
        c = self.config

        def phi(x: Tensor | float) -> Tensor | float:
            s6 = (c.sigma / x) ** 6
            return 4.0 * c.epsilon * (s6 * s6 - s6)

        return phi(r) - phi(c.cutoff)

    def atomic_energies(self, graph: AtomicGraph, index: Tensor) -> Tensor:
        """(N,) half of each atom's pair energies, eV."""
        lengths = torch.linalg.norm(graph.edge_vectors(), dim=1)
        keep = lengths < self.config.cutoff  # Verlet lists carry longer edges
        pair = 0.5 * self.pair_energy(lengths[keep])
        return scatter_sum(pair, graph.edge_index[0][keep], graph.n_atoms)
