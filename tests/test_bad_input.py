"""Bad input raises a ValueError that names the problem and the atom or system."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from trajcast_engine.graph import from_arrays, from_atoms
from trajcast_engine.neighbors import VerletNeighborList, neighbor_list, neighbor_list_atoms
from trajcast_engine.validation import species_from_symbols


def test_unknown_element_symbol():
    with pytest.raises(ValueError, match=r"unknown element symbol 'Xx' for atom 2"):
        species_from_symbols(["H", "O", "Xx"])
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        from_arrays(np.zeros((2, 3)), ["H", "Xx"])


def test_dummy_atom_in_atoms_names_the_system():
    bad = molecule("H2O")
    bad.numbers[1] = 0
    with pytest.raises(ValueError, match=r"atom 1 of system 1 has atomic number 0"):
        from_atoms([molecule("CH4"), bad])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates(value):
    atoms = bulk("Cu", cubic=True)
    atoms.positions[2, 1] = value
    with pytest.raises(ValueError, match=r"atom 2 has non-finite coordinates"):
        neighbor_list_atoms(atoms, 3.0)
    with pytest.raises(ValueError, match=r"atom 2 of system 1 has non-finite"):
        from_atoms([bulk("Cu", cubic=True), atoms])
    with pytest.raises(ValueError, match=r"atom 2 of system 1 has non-finite"):
        VerletNeighborList(3.0).update(
            np.concatenate([np.zeros((1, 3)), atoms.positions]),
            np.stack([np.eye(3) * 5, atoms.cell.array]),
            True,
            np.array([0, 1, 5]),
        )


def test_zero_volume_periodic_cell():
    atoms = Atoms(
        "H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True
    )
    with pytest.raises(ValueError, match=r"zero volume"):
        neighbor_list_atoms(atoms, 2.0)
    with pytest.raises(ValueError, match=r"system 1: periodic cell has zero volume"):
        from_atoms([molecule("H2"), atoms])


def test_negative_volume_periodic_cell():
    cell = np.diag([3.0, 3.0, 3.0])[[1, 0, 2]]
    with pytest.raises(ValueError, match=r"negative volume.*left-handed"):
        neighbor_list(np.zeros((1, 3)), cell, True, 2.0)


def test_periodic_direction_without_a_cell_vector():
    with pytest.raises(ValueError, match=r"span zero area"):
        neighbor_list(np.zeros((2, 3)), np.diag([3.0, 0.0, 0.0]), (True, True, False), 2.0)
    with pytest.raises(ValueError, match=r"span zero length"):
        from_arrays(np.zeros((2, 3)), ["H", "H"], cell=np.zeros((3, 3)), pbc=(False, False, True))


def test_open_directions_need_no_cell():
    pairs = neighbor_list(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.zeros((3, 3)), False, 2.0)
    assert len(pairs) == 2


@pytest.mark.parametrize("cutoff", [-1.0, 0.0, np.nan, np.inf, "five"])
def test_bad_cutoff(cutoff):
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(np.zeros((2, 3)), None, False, cutoff)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        neighbor_list(np.zeros((4, 2)), None, False, 2.0)
    with pytest.raises(ValueError, match="ptr"):
        neighbor_list(np.zeros((4, 3)), None, False, 2.0, ptr=np.array([0, 3]))
    with pytest.raises(ValueError, match="3 species for 2 positions"):
        from_arrays(np.zeros((2, 3)), ["H", "H", "O"])
    with pytest.raises(ValueError, match="not an ase.Atoms"):
        from_atoms([molecule("H2"), "H2O"])
