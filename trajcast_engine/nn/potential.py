"""An E(3)-equivariant interatomic potential (NequIP family) over the batched graph.

Energy model (Batzner et al., Nat. Commun. 13, 2453 (2022)):

    E_s = Σ_{i in s} [ σ · ε_i + μ + e_{Z_i} ]

where ``ε_i`` is the scalar read out from the last interaction layer, ``σ`` and ``μ`` a
scale and shift fixed from training data, and ``e_Z`` per-species reference energies.
Forces are ``F_i = -∂E/∂r_i`` (autograd). The stress is the strain derivative

    σ_ab = (1 / V) ∂E/∂ε_ab,   r -> r (1 + ε),  cell -> cell (1 + ε),  ε symmetric,

with ``V`` the cell volume (ASE's sign convention: positive under tension); it is defined
for fully periodic systems only. Units: Å, eV, eV/Å, eV/Å³.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn

from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.config import DTYPES, ModelConfig, SpeciesIndex
from trajcast_engine.nn.interaction import InteractionBlock, hidden_irreps
from trajcast_engine.nn.radial import RadialEmbedding
from trajcast_engine.nn.scatter import scatter_sum


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


class EquivariantPotential(nn.Module):
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

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.config.dtype]

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

    def species_indices(self, atomic_numbers: Tensor) -> Tensor:
        """Model index of each atom; ``ValueError`` naming elements it was not trained on."""
        return self.species_index(atomic_numbers)

    def forward(
        self, graph: AtomicGraph, compute_forces: bool = True, compute_stress: bool = False
    ) -> dict[str, Tensor]:
        """``energy`` (S,), ``energies`` (N,), and ``forces`` (N, 3) / ``stress``
        (S, 3, 3) when asked. Gradients keep their graph while the model is training."""
        if graph.edge_index is None or graph.edge_shift is None:
            raise ValueError("the graph has no edges: build them with graph.with_neighbors()")
        if graph.dtype != self.dtype:
            raise ValueError(f"graph is {graph.dtype}, the model is {self.dtype}: graph.to()")
        index = self.species_indices(graph.species)
        positions, cell = graph.positions, graph.cell
        inputs = []
        if compute_forces or compute_stress:
            positions = positions.detach().requires_grad_(True)
            inputs.append(positions)
        if compute_stress:
            periodic = graph.pbc.all(dim=1)
            if not bool(periodic.all()):
                s = int(torch.nonzero(~periodic)[0])
                raise ValueError(
                    f"stress is undefined for system {s}: it is not periodic in all three "
                    "directions"
                )
            strain = torch.zeros_like(cell).requires_grad_(True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum(
                "ni,nij->nj", positions, symmetric[graph.system_idx]
            )
            cell = cell + torch.bmm(cell, symmetric)
            inputs.append(strain)

        energies = self.atomic_energies(graph.replace(positions=positions, cell=cell), index)
        energy = scatter_sum(energies, graph.system_idx, graph.n_systems)
        out = {"energy": energy, "energies": energies}
        if inputs:
            grads = torch.autograd.grad(
                energy.sum(), inputs, create_graph=self.training, allow_unused=True
            )
            if compute_forces:
                forces = grads[0]
                out["forces"] = -forces if forces is not None else torch.zeros_like(positions)
            if compute_stress:
                volume = torch.linalg.det(graph.cell).abs()
                out["stress"] = grads[-1] / volume[:, None, None]
        return out

    def atomic_energies(self, graph: AtomicGraph, index: Tensor) -> Tensor:
        """(N,) per-atom energies in eV."""
        vectors = graph.edge_vectors()
        lengths = torch.linalg.norm(vectors, dim=1)
        keep = lengths < self.config.cutoff  # Verlet lists carry longer edges
        vectors, lengths = vectors[keep], lengths[keep]
        receivers, senders = graph.edge_index[0][keep], graph.edge_index[1][keep]
        edge_sh = o3.spherical_harmonics(
            self.irreps_sh, vectors, normalize=True, normalization="component"
        )
        edge_radial = self.radial(lengths)
        onehot = torch.nn.functional.one_hot(index, len(self.config.species)).to(self.dtype)
        h = self.embedding(onehot)
        for layer in self.layers:
            h = layer(h, onehot, edge_sh, edge_radial, receivers, senders)
        scalar = self.readout(torch.nn.functional.silu(self.readout_hidden(h))).squeeze(-1)
        return self.energy_scale * scalar + self.energy_shift + self.reference_energies[index]
