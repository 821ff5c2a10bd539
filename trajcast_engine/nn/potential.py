"""An E(3)-equivariant interatomic potential (NequIP family) over the batched graph.

Energy model (Batzner et al., Nat. Commun. 13, 2453 (2022)):

    E_s = Σ_{i in s} [ σ · ε_i + μ + e_{Z_i} ]

where ``ε_i`` is the scalar read out from the last interaction layer, ``σ`` and ``μ`` a
scale and shift fixed from training data, and ``e_Z`` per-species reference energies.
Forces and stress are derivatives of this energy
(:class:`~trajcast_engine.nn.conservative.ConservativePotential`). Units: Å, eV, eV/Å, eV/Å³.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn

from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.compiled import layers_of
from trajcast_engine.nn.config import DTYPES, ModelConfig, SpeciesIndex
from trajcast_engine.nn.conservative import ConservativePotential
from trajcast_engine.nn.interaction import InteractionBlock, hidden_irreps
from trajcast_engine.nn.radial import RadialEmbedding


@dataclass
class PotentialConfig(ModelConfig):
    """Hyperparameters and fitted constants of :class:`EquivariantPotential` (JSON-able)."""

    # constants fixed from training data
    energy_scale: float = 1.0  # eV
    energy_shift: float = 0.0  # eV per atom
    reference_energies: list[float] = field(default_factory=list)  # eV, one per species

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.reference_energies:
            self.reference_energies = [0.0] * len(self.species)
        if len(self.reference_energies) != len(self.species):
            raise ValueError("reference_energies needs one value per species")


class EquivariantPotential(ConservativePotential):
    """Energy, per-atom energies, forces and stress of a batch of systems.

    Call it on an :class:`AtomicGraph` with edges (``graph.with_neighbors(cutoff)`` or a
    Verlet list; edges longer than the cutoff contribute nothing). The model holds its
    dtype (``config.dtype``) and never changes torch's default dtype.
    """

    kind = "potential"

    def __init__(self, config: PotentialConfig | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = PotentialConfig.from_dict(config)
        self.config = config
        c = config
        dtype = DTYPES[c.dtype]
        self.species_index = SpeciesIndex(c.species)
        self.irreps_sh = o3.Irreps.spherical_harmonics(c.lmax)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )  # a module, so torch.compile never inspects the Irreps
        self.radial = RadialEmbedding(c.cutoff, c.num_basis, c.envelope_p)
        irreps_hidden = hidden_irreps(c.channels, c.lmax, c.both_parities)
        irreps = o3.Irreps(f"{c.channels}x0e")
        self.embedding = o3.Linear(o3.Irreps(f"{len(c.species)}x0e"), irreps)
        layers = []
        for _ in range(c.num_layers):
            layer = InteractionBlock(
                irreps,
                irreps_hidden,
                self.irreps_sh,
                len(c.species),
                c.num_basis,
                c.radial_hidden,
                c.radial_layers,
                c.avg_num_neighbors,
            )
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        self.readout_hidden = o3.Linear(irreps, o3.Irreps(f"{max(1, c.channels // 2)}x0e"))
        self.readout = o3.Linear(self.readout_hidden.irreps_out, o3.Irreps("1x0e"))
        self.register_buffer("energy_scale", torch.tensor(c.energy_scale))
        self.register_buffer("energy_shift", torch.tensor(c.energy_shift))
        self.register_buffer("reference_energies", torch.tensor(c.reference_energies))
        self.to(dtype)

    def set_normalization(
        self,
        avg_num_neighbors: float,
        energy_scale: float,
        energy_shift: float,
        reference_energies: list[float],
    ) -> None:
        """Fix the data-derived constants (before training)."""
        self.config.avg_num_neighbors = float(avg_num_neighbors)
        self.config.energy_scale = float(energy_scale)
        self.config.energy_shift = float(energy_shift)
        self.config.reference_energies = [float(e) for e in reference_energies]
        for layer in self.layers:
            layer.avg_num_neighbors = float(avg_num_neighbors)
        self.energy_scale.fill_(energy_scale)
        self.energy_shift.fill_(energy_shift)
        self.reference_energies.copy_(torch.tensor(reference_energies))

    def atomic_energies(self, graph: AtomicGraph, index: Tensor) -> Tensor:
        """(N,) per-atom energies in eV."""
        vectors = graph.edge_vectors()
        lengths = torch.linalg.norm(vectors, dim=1)
        keep = lengths < self.config.cutoff  # Verlet lists carry longer edges
        vectors, lengths = vectors[keep], lengths[keep]
        receivers, senders = graph.edge_index[0][keep], graph.edge_index[1][keep]
        edge_sh = self.spherical_harmonics(vectors)
        edge_radial = self.radial(lengths)
        onehot = torch.nn.functional.one_hot(index, len(self.config.species)).to(self.dtype)
        h = self.embedding(onehot)
        for layer in layers_of(self):
            h = layer(h, onehot, edge_sh, edge_radial, receivers, senders)
        scalar = self.readout(torch.nn.functional.silu(self.readout_hidden(h))).squeeze(-1)
        return self.energy_scale * scalar + self.energy_shift + self.reference_energies[index]
