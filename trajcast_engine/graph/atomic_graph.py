"""The batched atomic graph: one dataclass of tensors for many systems.

Layout (after torch-sim's ``SimState``): per-atom tensors have N rows, with the atoms of
system ``s`` contiguous and ``system_idx[a] == s``; per-system tensors have S rows.
Edges are ``edge_index = [i, j]`` (receiver ``i``, sender ``j``) with integer image
shifts, so that the edge vector is ``r[j] - r[i] + edge_shift @ cell[system of i]``.

Units: positions Å, velocities Å/fs, masses amu, cell Å.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trajcast_engine.neighbors.neighbor_list import Pairs


@dataclass
class AtomicGraph:
    """Positions, velocities, species, masses, cells and edges of a batch of systems.

    Build it with :func:`trajcast_engine.graph.from_atoms` (or ``AtomicGraph.from_atoms``),
    add edges with :meth:`with_neighbors`, move it with :meth:`to`, and turn it back
    into ASE with :meth:`to_atoms`.
    """

    positions: Tensor  # (N, 3) Å
    species: Tensor  # (N,) int64 atomic numbers
    masses: Tensor  # (N,) amu
    cell: Tensor  # (S, 3, 3) Å, cell vectors as rows
    pbc: Tensor  # (S, 3) bool
    system_idx: Tensor  # (N,) int64, non-decreasing
    velocities: Tensor | None = None  # (N, 3) Å/fs
    edge_index: Tensor | None = None  # (2, E) int64: receiver i, sender j
    edge_shift: Tensor | None = None  # (E, 3) int64 cell images

    def __post_init__(self) -> None:
        n = self.positions.shape[0]
        s = self.cell.shape[0]
        expected = {
            "positions": (self.positions, (n, 3)),
            "species": (self.species, (n,)),
            "masses": (self.masses, (n,)),
            "system_idx": (self.system_idx, (n,)),
            "cell": (self.cell, (s, 3, 3)),
            "pbc": (self.pbc, (s, 3)),
        }
        if self.velocities is not None:
            expected["velocities"] = (self.velocities, (n, 3))
        if (self.edge_index is None) != (self.edge_shift is None):
            raise ValueError("edge_index and edge_shift must be given together")
        if self.edge_index is not None and self.edge_shift is not None:
            e = self.edge_index.shape[-1]
            expected["edge_index"] = (self.edge_index, (2, e))
            expected["edge_shift"] = (self.edge_shift, (e, 3))
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")

    # ---- sizes and placement -------------------------------------------------------
    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_systems(self) -> int:
        return int(self.cell.shape[0])

    @property
    def n_edges(self) -> int:
        return 0 if self.edge_index is None else int(self.edge_index.shape[1])

    @property
    def atoms_per_system(self) -> Tensor:
        """(S,) number of atoms in each system."""
        return torch.bincount(self.system_idx, minlength=self.n_systems)

    @property
    def ptr(self) -> Tensor:
        """(S+1,) where each system's atoms start; the last entry is ``n_atoms``."""
        counts = self.atoms_per_system
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    def replace(self, **changes: Tensor | None) -> AtomicGraph:
        """A copy with some fields replaced (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> AtomicGraph:
        """Move to ``device`` and cast floating-point fields to ``dtype``."""
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                cast = dtype if value.is_floating_point() else None
                changes[field.name] = value.to(device=device, dtype=cast)
        return self.replace(**changes)

    # ---- edges ---------------------------------------------------------------------
    def with_pairs(self, pairs: Pairs) -> AtomicGraph:
        """A copy carrying ``pairs`` (from any of the engine's neighbour lists) as edges."""
        index = torch.from_numpy(np.stack([pairs.i, pairs.j])).to(self.device)
        shift = torch.from_numpy(np.ascontiguousarray(pairs.shift)).to(self.device)
        return self.replace(edge_index=index, edge_shift=shift)

    def with_neighbors(self, cutoff: float) -> AtomicGraph:
        """A copy with edges for every pair closer than ``cutoff`` (Å), both ways."""
        from trajcast_engine.neighbors.neighbor_list import neighbor_list

        positions, cells, pbc, ptr = self.numpy_geometry()
        return self.with_pairs(neighbor_list(positions, cells, pbc, cutoff, ptr))

    def numpy_geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(positions, cells, pbc, ptr)`` as float64/bool/int64 NumPy arrays on the host."""
        return (
            self.positions.detach().to("cpu", torch.float64).numpy(),
            self.cell.detach().to("cpu", torch.float64).numpy(),
            self.pbc.detach().cpu().numpy(),
            self.ptr.cpu().numpy(),
        )

    def edge_vectors(self) -> Tensor:
        """(E, 3) ``r[j] - r[i] + shift @ cell``, differentiable in positions and cell."""
        if self.edge_index is None or self.edge_shift is None:
            raise ValueError("this graph has no edges: call with_neighbors(cutoff) first")
        i, j = self.edge_index
        cell = self.cell[self.system_idx[i]]
        offsets = torch.einsum("ed,edk->ek", self.edge_shift.to(self.dtype), cell)
        return self.positions[j] - self.positions[i] + offsets

    @classmethod
    def batch(cls, graphs: list[AtomicGraph]) -> AtomicGraph:
        """One graph of all systems of ``graphs`` (edges kept, indices offset)."""
        if not graphs:
            raise ValueError("no graphs to batch")
        has_edges = [g.edge_index is not None for g in graphs]
        has_velocities = [g.velocities is not None for g in graphs]
        if len(set(has_edges)) > 1 or len(set(has_velocities)) > 1:
            raise ValueError("all graphs must alike have (or lack) edges and velocities")
        atom_offsets = [0]
        system_offsets = [0]
        for g in graphs[:-1]:
            atom_offsets.append(atom_offsets[-1] + g.n_atoms)
            system_offsets.append(system_offsets[-1] + g.n_systems)

        def cat(name: str) -> Tensor:
            return torch.cat([getattr(g, name) for g in graphs])

        return cls(
            positions=cat("positions"),
            species=cat("species"),
            masses=cat("masses"),
            cell=cat("cell"),
            pbc=cat("pbc"),
            system_idx=torch.cat(
                [g.system_idx + o for g, o in zip(graphs, system_offsets, strict=True)]
            ),
            velocities=cat("velocities") if has_velocities[0] else None,
            edge_index=torch.cat(
                [g.edge_index + o for g, o in zip(graphs, atom_offsets, strict=True)], dim=1
            )
            if has_edges[0]
            else None,
            edge_shift=cat("edge_shift") if has_edges[0] else None,
        )

    # ---- ASE -----------------------------------------------------------------------
    @classmethod
    def from_atoms(cls, atoms, dtype: torch.dtype = torch.float64, device=None) -> AtomicGraph:
        """Build from one ``ase.Atoms`` or a list (see :func:`trajcast_engine.graph.from_atoms`)."""
        from trajcast_engine.graph.ase_convert import from_atoms

        return from_atoms(atoms, dtype=dtype, device=device)

    def to_atoms(self) -> list:
        """One ``ase.Atoms`` per system (see :func:`trajcast_engine.graph.to_atoms`)."""
        from trajcast_engine.graph.ase_convert import to_atoms

        return to_atoms(self)
