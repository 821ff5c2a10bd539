"""The Numba cell list must give exactly ASE's pair set, shifts included."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import pair_set, random_atoms, random_cell

from trajcast_engine.neighbors import neighbor_list, neighbor_list_atoms, pair_distances


def assert_same_as_ase(atoms: Atoms, cutoff: float) -> int:
    i, j, shift = ase_neighbor_list("ijS", atoms, cutoff)
    ours = neighbor_list_atoms(atoms, cutoff)
    assert pair_set(ours.i, ours.j, ours.shift) == pair_set(i, j, shift)
    assert len(ours) == len(i), "duplicate pairs"
    return len(i)


PBC_CHOICES = [
    (True, True, True),
    (True, True, False),
    (True, False, True),
    (False, True, False),
    (True, False, False),
    (False, False, False),
]


@pytest.mark.parametrize("pbc", PBC_CHOICES)
@pytest.mark.parametrize("triclinic", [False, True])
def test_random_systems_match_ase(pbc, triclinic):
    rng = np.random.default_rng([int(x) for x in pbc] + [int(triclinic)])
    total = 0
    for _ in range(25):
        length = rng.uniform(3.0, 10.0)
        atoms = random_atoms(rng, int(rng.integers(1, 60)), length, pbc, triclinic)
        total += assert_same_as_ase(atoms, cutoff=rng.uniform(0.8, 5.0))
    assert total > 0


@pytest.mark.parametrize("pbc", PBC_CHOICES[:4])
def test_cells_smaller_than_cutoff_see_many_images(pbc):
    rng = np.random.default_rng(7)
    for _ in range(15):
        atoms = random_atoms(rng, int(rng.integers(1, 6)), rng.uniform(1.5, 3.0), pbc)
        n_pairs = assert_same_as_ase(atoms, cutoff=rng.uniform(3.0, 7.0))
        assert n_pairs > 0


def test_single_atom_sees_its_own_images():
    atoms = Atoms("Ar", positions=[[0.3, -0.2, 0.1]], cell=np.diag([2.0, 2.5, 3.0]), pbc=True)
    ours = neighbor_list_atoms(atoms, 4.1)
    assert np.all(ours.i == 0) and np.all(ours.j == 0)
    assert not np.any(np.all(ours.shift == 0, axis=1)), "no zero-shift self pair"
    assert_same_as_ase(atoms, 4.1)


def test_single_atom_in_vacuum_has_no_pairs():
    ours = neighbor_list(np.zeros((1, 3)), None, False, 5.0)
    assert len(ours) == 0


def test_vacuum_molecules_without_a_cell():
    for name in ["CH3CH2OH", "C6H6", "H2O", "CH4"]:
        atoms = molecule(name)
        assert not atoms.cell.any()
        for cutoff in (1.2, 2.5, 6.0):
            assert_same_as_ase(atoms, cutoff)


def test_far_away_and_negative_atoms():
    rng = np.random.default_rng(3)
    for pbc in PBC_CHOICES:
        atoms = random_atoms(rng, 40, 6.0, pbc, spread=(-30.0, 30.0))
        atoms.positions[:3] += [[-1e3, 2e3, 5e2], [4e3, -3e3, 1e3], [0.0, 0.0, -7e3]]
        assert_same_as_ase(atoms, 3.5)


def test_sparse_open_system_stays_cheap():
    """Two clusters a kilometre apart must not allocate a bin per cubic cutoff."""
    atoms = molecule("C6H6")
    far = molecule("C6H6")
    far.positions += 1e13
    assert_same_as_ase(atoms + far, 3.0)


def test_crystal_neighbour_shells():
    atoms = bulk("Cu", "fcc", a=3.61).repeat((2, 3, 4))
    for cutoff, per_atom in [(2.6, 12), (3.7, 18), (4.5, 42)]:
        ours = neighbor_list_atoms(atoms, cutoff)
        assert np.all(np.bincount(ours.i) == per_atom)
        assert_same_as_ase(atoms, cutoff)


def test_shift_convention_gives_pair_vectors():
    rng = np.random.default_rng(11)
    atoms = random_atoms(rng, 30, 5.0, (True, False, True))
    ours = neighbor_list_atoms(atoms, 4.0)
    vectors = atoms.positions[ours.j] - atoms.positions[ours.i] + ours.shift @ atoms.cell.array
    _, _, ase_d = ase_neighbor_list("ijd", atoms, 4.0)
    assert np.all(np.linalg.norm(vectors, axis=1) < 4.0)
    np.testing.assert_allclose(np.sort(np.linalg.norm(vectors, axis=1)), np.sort(ase_d))
    assert np.all(ours.shift[:, 1] == 0), "no shift along the open direction"
    assert np.all(np.diff(ours.i) >= 0), "pairs are grouped by receiver i"


def test_batch_has_no_edges_between_systems():
    rng = np.random.default_rng(5)
    systems = [
        random_atoms(rng, 20, 4.0, (True, True, True)),
        molecule("C6H6"),
        random_atoms(rng, 1, 2.0, (True, True, False)),
        random_atoms(rng, 35, 6.0, (False, True, True)),
    ]
    systems[1].positions += systems[0].positions[0]  # overlaps system 0 in space
    batch = neighbor_list_atoms(systems, 3.0)
    ptr = np.cumsum([0] + [len(a) for a in systems])
    system_of = np.repeat(np.arange(len(systems)), np.diff(ptr))
    assert np.all(system_of[batch.i] == system_of[batch.j])
    for s, atoms in enumerate(systems):
        rows = (batch.i >= ptr[s]) & (batch.i < ptr[s + 1])
        single = neighbor_list_atoms(atoms, 3.0)
        assert pair_set(batch.i[rows] - ptr[s], batch.j[rows] - ptr[s], batch.shift[rows]) == (
            pair_set(single.i, single.j, single.shift)
        )


def test_rotation_translation_and_permutation_invariance():
    rng = np.random.default_rng(9)
    atoms = random_atoms(rng, 40, 6.0, (True, True, False))
    cutoff = 3.5

    def labelled_pairs(atoms, labels):
        """Pairs as (label_i, label_j, distance) so that reordered atoms compare equal."""
        p = neighbor_list_atoms(atoms, cutoff)
        ptr = np.array([0, len(atoms)])
        d = pair_distances(atoms.positions, atoms.cell.array[None], ptr, p.i, p.j, p.shift)
        return sorted(zip(labels[p.i], labels[p.j], np.round(d, 9), strict=True))

    labels = np.arange(len(atoms))
    base = labelled_pairs(atoms, labels)
    assert base

    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # a rotation or a reflection
    moved = Atoms(
        atoms.numbers,
        positions=atoms.positions @ q.T + [1.7, -2.2, 0.4],
        cell=atoms.cell.array @ q.T,
        pbc=atoms.pbc,
    )
    assert labelled_pairs(moved, labels) == base

    perm = rng.permutation(len(atoms))
    assert labelled_pairs(atoms[perm], labels[perm]) == base


@pytest.mark.slow
def test_many_random_systems_match_ase():
    rng = np.random.default_rng(2026)
    for _ in range(600):
        pbc = tuple(rng.random(3) < 0.6)
        length = rng.uniform(1.5, 10.0)
        atoms = random_atoms(rng, int(rng.integers(1, 50)), length, pbc, bool(rng.random() < 0.7))
        assert_same_as_ase(atoms, cutoff=rng.uniform(0.3, 2.0) * length)


def test_torch_cell_list_equals_the_numba_list(rng):
    import torch

    from trajcast_engine.neighbors import neighbor_list
    from trajcast_engine.neighbors.torch_cell_list import supports, torch_neighbor_list

    tested = 0
    for trial in range(30):
        cell = random_cell(rng, 15.0, triclinic=trial % 2 == 1)
        positions = rng.uniform(-0.5, 1.5, (250, 3)) @ cell
        cells = torch.tensor(cell)[None]
        pbc = torch.ones(1, 3, dtype=torch.bool)
        if not supports(cells, pbc, 3.0):
            continue
        ref = neighbor_list(positions, cell, True, 3.0)
        index, shift = torch_neighbor_list(
            torch.tensor(positions), cells, pbc, torch.tensor([0, 250]), 3.0
        )
        assert pair_set(index[0], index[1], shift) == pair_set(ref.i, ref.j, ref.shift)
        assert bool((index[0][1:] >= index[0][:-1]).all())  # sorted by receiver
        tested += 1
    assert tested >= 15
    with pytest.raises(ValueError, match="three cutoffs wide"):
        torch_neighbor_list(
            torch.zeros(2, 3), torch.eye(3)[None] * 5, pbc, torch.tensor([0, 2]), 3.0
        )
