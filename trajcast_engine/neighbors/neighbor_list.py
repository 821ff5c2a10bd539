"""Validated entry points to the Numba cell list: arrays, batches and ASE ``Atoms``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from trajcast_engine.neighbors.cell_list import build_pairs
from trajcast_engine.validation import check_cell, check_cutoff, check_positions


@dataclass(frozen=True)
class Pairs:
    """A full neighbour list: ``d = r[j] - r[i] + shift @ cell`` for every pair.

    ``i`` and ``j`` index atoms of the whole batch (sorted by ``i``), ``shift`` holds
    integer cell images, zero along non-periodic directions.
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray

    def __len__(self) -> int:
        return int(self.i.size)


def as_batch_arrays(
    positions: np.ndarray,
    cells: np.ndarray | None,
    pbc: np.ndarray | bool | None,
    ptr: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalise one system or a batch to ``(positions, cells (S,3,3), pbc (S,3), ptr)``.

    A single system may pass ``cell`` (3, 3) or ``None`` (no cell, an open molecule) and
    ``pbc`` as a bool or three flags. Checks every system and raises ``ValueError``
    naming the atom or system at fault.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if ptr is None:
        ptr = np.array([0, len(positions)], dtype=np.int64)
    ptr = np.asarray(ptr, dtype=np.int64)
    n_systems = ptr.size - 1
    if n_systems < 1 or ptr[0] != 0 or ptr[-1] != len(positions) or np.any(np.diff(ptr) < 0):
        raise ValueError(
            f"ptr must rise from 0 to the number of atoms ({len(positions)}), got {ptr}"
        )
    cells = np.zeros((n_systems, 3, 3)) if cells is None else np.asarray(cells, np.float64)
    cells = cells.reshape(n_systems, 3, 3) if cells.size == 9 * n_systems else cells
    if cells.shape != (n_systems, 3, 3):
        raise ValueError(f"expected {n_systems} cell(s) of shape (3, 3), got {cells.shape}")
    pbc = np.zeros(3, dtype=bool) if pbc is None else np.asarray(pbc, dtype=bool)
    pbc = np.broadcast_to(pbc, (n_systems, 3)) if pbc.size in (1, 3) else pbc
    if pbc.shape != (n_systems, 3):
        raise ValueError(f"expected {n_systems} pbc flag triple(s), got shape {pbc.shape}")
    pbc = np.ascontiguousarray(pbc)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {positions.shape}")
    for s in range(n_systems):
        system = None if n_systems == 1 else s
        check_positions(positions[ptr[s] : ptr[s + 1]], system)
        check_cell(cells[s], pbc[s], system)
    return positions, cells, pbc, ptr


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: np.ndarray | bool | None,
    cutoff: float,
    ptr: np.ndarray | None = None,
) -> Pairs:
    """All pairs closer than ``cutoff`` (Å), both ways, for one system or a batch.

    For a batch, ``positions`` stacks the systems, ``ptr`` (S+1) gives where each system
    starts, ``cell`` is (S, 3, 3) and ``pbc`` is (S, 3). Atoms of different systems are
    never paired. Matches ``ase.neighborlist.neighbor_list('ijS', atoms, cutoff)``.
    """
    cutoff = check_cutoff(cutoff)
    positions, cells, pbc, ptr = as_batch_arrays(positions, cell, pbc, ptr)
    return Pairs(*build_pairs(positions, cells, pbc, ptr, cutoff))


def atoms_batch_arrays(
    atoms: Atoms | Sequence[Atoms],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stack one or many ``Atoms`` into ``(positions, cells, pbc, ptr)``."""
    images = [atoms] if isinstance(atoms, Atoms) else list(atoms)
    if not images:
        raise ValueError("no structures given: expected an ase.Atoms or a non-empty list")
    positions = np.concatenate([a.positions for a in images]).reshape(-1, 3)
    cells = np.stack([a.cell.array for a in images])
    pbc = np.stack([a.pbc for a in images])
    ptr = np.concatenate([[0], np.cumsum([len(a) for a in images])]).astype(np.int64)
    return positions, cells, pbc, ptr


def neighbor_list_atoms(atoms: Atoms | Sequence[Atoms], cutoff: float) -> Pairs:
    """``neighbor_list`` for one ``ase.Atoms`` or a list of them (indices over the batch)."""
    positions, cells, pbc, ptr = atoms_batch_arrays(atoms)
    return neighbor_list(positions, cells, pbc, cutoff, ptr)
