"""Shared helpers: seeded random structures and pair-set comparison."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms


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
