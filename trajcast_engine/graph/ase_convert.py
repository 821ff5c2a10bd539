"""Conversion between ``ase.Atoms`` and the batched :class:`AtomicGraph`.

ASE stores velocities in Å per ASE time unit; the engine uses Å/fs:
``v[Å/fs] = v_ase * ase.units.fs`` (``ase.units.fs`` ≈ 0.0982 ASE time units per fs).
Positions, cell, pbc, atomic numbers and masses round-trip bit for bit in float64.
Velocities round-trip to within a few units in the last place: ASE stores momenta,
and neither ``p / m`` nor the unit factor can be inverted exactly in floating point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms, units
from ase.data import atomic_masses

from trajcast_engine.graph.atomic_graph import AtomicGraph
from trajcast_engine.validation import (
    check_cell,
    check_positions,
    check_species,
    species_from_symbols,
)


def from_arrays(
    positions: np.ndarray,
    species: Sequence[str | int] | np.ndarray,
    cell: np.ndarray | None = None,
    pbc: bool | Sequence[bool] = False,
    velocities: np.ndarray | None = None,
    masses: np.ndarray | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> AtomicGraph:
    """One system from plain arrays: positions (Å), element symbols or atomic numbers,
    an optional cell (Å, vectors as rows), pbc flags, velocities (Å/fs) and masses (amu).
    """
    numbers = species_from_symbols(list(species))
    positions = np.asarray(positions, dtype=np.float64)
    check_positions(positions)
    if len(numbers) != len(positions):
        raise ValueError(f"{len(numbers)} species for {len(positions)} positions")
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc_arr = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    check_cell(cell, pbc_arr)
    masses = atomic_masses[numbers] if masses is None else np.asarray(masses, np.float64)
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64)
        check_positions(velocities)
    return _graph(
        [positions],
        [numbers],
        [masses],
        [cell],
        [pbc_arr],
        None if velocities is None else [velocities],
        dtype,
        device,
    )


def from_atoms(
    atoms: Atoms | Sequence[Atoms],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> AtomicGraph:
    """A graph (without edges) of one ``Atoms`` or a batch of them.

    Velocities are taken when any structure carries momenta (others get zeros) and are
    converted to Å/fs; custom masses are kept. Raises ``ValueError`` naming the atom and
    system for unknown elements, non-finite coordinates or a degenerate periodic cell.
    """
    images = [atoms] if isinstance(atoms, Atoms) else list(atoms)
    if not images:
        raise ValueError("no structures given: expected an ase.Atoms or a non-empty list")
    for k, image in enumerate(images):
        if not isinstance(image, Atoms):
            raise ValueError(f"structure {k} is a {type(image).__name__}, not an ase.Atoms")
        system = None if len(images) == 1 else k
        check_species(image.numbers, system)
        check_positions(image.positions, system)
        check_cell(image.cell.array, image.pbc, system)
    with_velocities = any(image.has("momenta") for image in images)
    return _graph(
        [image.positions for image in images],
        [image.numbers for image in images],
        [image.get_masses() for image in images],
        [image.cell.array for image in images],
        [image.pbc for image in images],
        [image.get_velocities() * units.fs for image in images] if with_velocities else None,
        dtype,
        device,
    )


def _graph(positions, numbers, masses, cells, pbc, velocities, dtype, device) -> AtomicGraph:
    counts = [len(p) for p in positions]

    def floats(arrays, shape):
        return torch.as_tensor(np.concatenate(arrays).reshape(shape), dtype=dtype, device=device)

    return AtomicGraph(
        positions=floats(positions, (-1, 3)),
        species=torch.as_tensor(np.concatenate(numbers).astype(np.int64), device=device),
        masses=floats(masses, (-1,)),
        cell=floats(cells, (-1, 3, 3)),
        pbc=torch.as_tensor(np.stack(pbc), dtype=torch.bool, device=device),
        system_idx=torch.repeat_interleave(
            torch.arange(len(counts), device=device),
            torch.as_tensor(counts, device=device),
        ),
        velocities=None if velocities is None else floats(velocities, (-1, 3)),
    )


def to_atoms(graph: AtomicGraph) -> list[Atoms]:
    """One ``ase.Atoms`` per system, with positions, cell, pbc, masses and velocities."""
    positions = graph.positions.detach().cpu().numpy().astype(np.float64)
    numbers = graph.species.cpu().numpy()
    masses = graph.masses.detach().cpu().numpy().astype(np.float64)
    cells = graph.cell.detach().cpu().numpy().astype(np.float64)
    pbc = graph.pbc.cpu().numpy()
    velocities = None
    if graph.velocities is not None:
        velocities = graph.velocities.detach().cpu().numpy().astype(np.float64) / units.fs
    ptr = graph.ptr.cpu().numpy()
    images = []
    for s in range(graph.n_systems):
        rows = slice(ptr[s], ptr[s + 1])
        atoms = Atoms(
            numbers=numbers[rows],
            positions=positions[rows],
            cell=cells[s],
            pbc=pbc[s],
            masses=masses[rows],
        )
        if velocities is not None:
            atoms.set_velocities(velocities[rows])
        images.append(atoms)
    return images
