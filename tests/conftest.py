"""Shared helpers: seeded random structures and pair-set comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk


def pair_set(i, j, shift) -> set[tuple[int, int, tuple[int, int, int]]]:
    """Pairs as a set of ``(i, j, (s1, s2, s3))`` for order-independent comparison."""
    return set(
        zip(
            np.asarray(i).tolist(),
            np.asarray(j).tolist(),
            map(tuple, np.asarray(shift).tolist()),
            strict=True,
        )
    )


def random_cell(rng: np.random.Generator, length: float, triclinic: bool) -> np.ndarray:
    """A right-handed cell of roughly ``length`` Å, sheared when ``triclinic``."""
    cell = np.diag(rng.uniform(0.6, 1.4, 3) * length)
    if triclinic:
        cell += rng.uniform(-0.45, 0.45, (3, 3)) * length * (1 - np.eye(3))
    if np.linalg.det(cell) < 0:
        cell[[0, 1]] = cell[[1, 0]]
    return cell


def random_atoms(
    rng: np.random.Generator,
    n_atoms: int,
    length: float,
    pbc,
    triclinic: bool = True,
    spread: tuple[float, float] = (-0.5, 1.5),
) -> Atoms:
    """Random H atoms in a random cell, many of them outside it (negative coordinates too)."""
    cell = random_cell(rng, length, triclinic)
    frac = rng.uniform(*spread, (n_atoms, 3))
    return Atoms(f"H{n_atoms}", positions=frac @ cell, cell=cell, pbc=pbc)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


def copper_reference(path: Path, **settings) -> list[Path]:
    """Reference MD of 32 EMT copper atoms (ASE's EMT, 2 fs step, 500 K unless
    ``settings`` say otherwise) written to ``path``; one file per segment."""
    from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    merged = ReferenceSettings(**{"temperature": 500.0, "md_timestep": 2.0, **settings})
    return run_reference_md(atoms, "emt", merged, path)


def cut_frames(path: Path, frames: int) -> None:
    """Shorten every growing dataset of a trajectory file to ``frames`` frames, as a run
    killed before it wrote the rest leaves it."""
    import h5py

    def cut(name, node):
        if isinstance(node, h5py.Dataset) and node.maxshape and node.maxshape[0] is None:
            node.resize(frames, axis=0)

    with h5py.File(path, "a") as f:
        f.visititems(cut)
