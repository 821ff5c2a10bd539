"""A reused (skin) list must never miss a pair within the cutoff."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import pair_set, random_atoms

from trajcast_engine.neighbors import VerletNeighborList, neighbor_list


def exact_pairs(positions, cell, pbc, cutoff):
    p = neighbor_list(positions, cell, pbc, cutoff)
    return pair_set(p.i, p.j, p.shift)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_reused_or_rebuilt_list_contains_every_pair(pbc):
    rng = np.random.default_rng(17)
    atoms = random_atoms(rng, 80, 7.0, pbc, spread=(0.0, 1.0))
    cell = atoms.cell.array
    cutoff, skin = 3.0, 0.8
    verlet = VerletNeighborList(cutoff, skin)
    positions = atoms.positions.copy()
    verlet.update(positions, cell, pbc)
    reused = 0
    for _ in range(120):
        # mostly small moves (reuse), sometimes one atom jumps past half the skin
        step = rng.normal(0.0, 0.03, positions.shape)
        if rng.random() < 0.2:
            step[rng.integers(len(step))] += rng.uniform(0.3, 1.0) * skin * rng.normal(size=3)
        positions = positions + step
        pairs = verlet.update(positions, cell, pbc)
        reused += not verlet.rebuilt
        exact = exact_pairs(positions, cell, pbc, cutoff)
        assert exact <= pair_set(pairs.i, pairs.j, pairs.shift), "a pair was missed"
        filtered = verlet.within_cutoff(positions)
        assert pair_set(filtered.i, filtered.j, filtered.shift) == exact
    assert 0 < verlet.n_builds < 120, "the skin must be reused and rebuilt at times"
    assert reused > 20


def test_rebuild_criterion_is_the_two_largest_moves():
    rng = np.random.default_rng(1)
    atoms = random_atoms(rng, 50, 6.0, True, spread=(0.0, 1.0))
    cell = atoms.cell.array
    verlet = VerletNeighborList(2.5, skin=1.0)
    start = atoms.positions.copy()
    verlet.update(start, cell, True)
    moved = start.copy()
    moved[3] += [0.45, 0.0, 0.0]
    moved[7] += [0.0, 0.0, -0.5]
    verlet.update(moved, cell, True)
    assert not verlet.rebuilt, "0.45 + 0.5 <= skin: reuse"
    moved[9] += [0.0, 0.52, 0.0]
    verlet.update(moved, cell, True)
    assert verlet.rebuilt, "0.52 + 0.5 > skin: rebuild"


@pytest.mark.parametrize(("gap", "move"), [(-1e-6, 1.0 - 0.5e-6), (1e-6, 1.0 + 2e-6)])
def test_worst_case_two_atoms_approaching(gap, move):
    """Two atoms approaching head-on by half the skin each: the tightest case.

    Just inside ``cutoff + skin`` at the build, the pair is listed and the list is
    reused; just outside, it is not listed, and the move must trigger a rebuild.
    """
    cell = np.diag([30.0, 30.0, 30.0])
    cutoff, skin = 3.0, 1.0
    verlet = VerletNeighborList(cutoff, skin)
    positions = np.array([[10.0, 10.0, 10.0], [10.0 + cutoff + skin + gap, 10.0, 10.0]])
    assert len(verlet.update(positions, cell, True)) == (2 if gap < 0 else 0)
    positions[0, 0] += move / 2
    positions[1, 0] -= move / 2
    assert np.linalg.norm(positions[1] - positions[0]) < cutoff
    assert len(verlet.update(positions, cell, True)) == 2
    assert verlet.rebuilt == (gap > 0)
    assert len(verlet.within_cutoff(positions)) == 2


def test_cell_change_and_wrapping_force_a_rebuild():
    rng = np.random.default_rng(2)
    atoms = random_atoms(rng, 30, 5.0, True, spread=(0.0, 1.0))
    cell = atoms.cell.array
    verlet = VerletNeighborList(2.0, skin=0.5)
    verlet.update(atoms.positions, cell, True)
    verlet.update(atoms.positions, cell * 1.001, True)
    assert verlet.rebuilt
    verlet.update(atoms.positions, cell * 1.001, True)
    assert not verlet.rebuilt
    wrapped = atoms.positions.copy()
    wrapped[0] += cell[0] * 1.001  # same physical state, shifted by a lattice vector
    verlet.update(wrapped, cell * 1.001, True)
    assert verlet.rebuilt


def test_bad_skin_is_refused():
    with pytest.raises(ValueError, match="skin"):
        VerletNeighborList(3.0, skin=-0.1)
    with pytest.raises(ValueError, match="cutoff"):
        VerletNeighborList(-3.0)
