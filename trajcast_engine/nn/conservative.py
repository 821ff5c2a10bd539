"""Potentials whose forces and stress are derivatives of one energy.

A subclass gives per-atom energies ``ε_i`` of a batched graph; this base sums them per
system, ``E_s = Σ_{i in s} ε_i``, and differentiates with one autograd call:

    F_i = -∂E/∂r_i,
    σ_ab = (1 / V) ∂E/∂ε_ab,   r -> r (1 + ε),  cell -> cell (1 + ε),  ε symmetric,

with ``V`` the cell volume (ASE's sign convention: positive under tension); the stress is
defined for fully periodic systems only (Knuth et al., Comput. Phys. Commun. 190, 33
(2015) for the strain derivative). Units: Å, eV, eV/Å, eV/Å³.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.config import DTYPES
from trajcast_engine.nn.scatter import scatter_sum


class ConservativePotential(nn.Module):
    """Energy, per-atom energies, forces and stress of a batch of systems, from a
    subclass's :meth:`atomic_energies`. The subclass sets ``config`` (with ``species``,
    ``cutoff`` and ``dtype``) and ``species_index``."""

    kind = "potential"

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.config.dtype]

    def species_indices(self, atomic_numbers: Tensor) -> Tensor:
        """Model index of each atom; ``ValueError`` naming elements it was not trained on."""
        return self.species_index(atomic_numbers)

    def atomic_energies(self, graph: AtomicGraph, index: Tensor) -> Tensor:
        """(N,) per-atom energies in eV."""
        raise NotImplementedError

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
