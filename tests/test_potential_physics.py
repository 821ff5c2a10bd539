"""The equivariant potential obeys the physics a user relies on (float64 throughout).

These use untrained (random-weight) models: symmetry, gradients and smoothness hold for
any weights, and a random model exercises every path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from trajcast_engine.graph import from_atoms
from trajcast_engine.nn.potential import EquivariantPotential, PotentialConfig

CUTOFF = 4.0


def make_model(both_parities: bool = False, seed: int = 0, **changes) -> EquivariantPotential:
    torch.manual_seed(seed)
    config = dict(
        species=[1, 6, 8, 29],
        cutoff=CUTOFF,
        lmax=2,
        channels=6,
        num_layers=2,
        num_basis=6,
        radial_hidden=16,
        both_parities=both_parities,
        avg_num_neighbors=12.0,
        energy_scale=0.7,
        energy_shift=-0.1,
        reference_energies=[-1.0, -2.0, -3.0, -4.0],
    )
    config.update(changes)
    return EquivariantPotential(PotentialConfig(**config)).eval()


def evaluate(model, atoms, stress=None):
    stress = atoms.pbc.all() if stress is None else stress
    graph = from_atoms(atoms).with_neighbors(model.config.cutoff)
    out = model(graph, compute_forces=True, compute_stress=stress)
    return {k: v.detach().numpy() for k, v in out.items()}


def copper(seed=0, reps=(2, 2, 2), rattle=0.15) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(rattle, seed=seed)
    return atoms


def mixed_cell(seed=1) -> Atoms:
    """A triclinic periodic cell with several species and uneven neighbourhoods."""
    rng = np.random.default_rng(seed)
    cell = np.array([[6.0, 0.4, 0.3], [0.8, 5.5, -0.2], [0.5, -0.6, 6.3]])
    frac = rng.random((14, 3))
    atoms = Atoms("Cu6C3O3H2", scaled_positions=frac, cell=cell, pbc=True)
    return atoms


def random_orthogonal(rng, reflect: bool) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("both_parities", [False, True])
@pytest.mark.parametrize("reflect", [False, True])
def test_rotation_reflection_translation(both_parities, reflect):
    model = make_model(both_parities)
    rng = np.random.default_rng(3)
    for atoms in (mixed_cell(), molecule("CH3CH2OH")):
        ref = evaluate(model, atoms)
        q = random_orthogonal(rng, reflect)
        moved = atoms.copy()
        moved.positions = atoms.positions @ q.T + rng.normal(0, 3, 3)
        cell = atoms.cell.array @ q.T
        if np.linalg.det(cell) < 0:  # a reflected cell is left-handed: the same lattice
            cell = cell[[1, 0, 2]]  # with two vectors swapped is right-handed
        moved.cell = cell
        out = evaluate(model, moved)
        np.testing.assert_allclose(out["energy"], ref["energy"], rtol=1e-10)
        np.testing.assert_allclose(out["energies"], ref["energies"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out["forces"], ref["forces"] @ q.T, rtol=1e-9, atol=1e-11)
        if "stress" in ref:
            np.testing.assert_allclose(out["stress"][0], q @ ref["stress"][0] @ q.T, atol=1e-12)


def test_permutation():
    model = make_model()
    atoms = mixed_cell()
    ref = evaluate(model, atoms)
    perm = np.random.default_rng(0).permutation(len(atoms))
    out = evaluate(model, atoms[perm])
    np.testing.assert_allclose(out["energy"], ref["energy"], rtol=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"][perm], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(out["stress"], ref["stress"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("make", [mixed_cell, lambda: molecule("C6H6")])
def test_forces_are_minus_the_numerical_gradient(make):
    model = make_model()
    atoms = make()
    forces = evaluate(model, atoms)["forces"]
    h = 1e-5
    for a in range(0, len(atoms), 3):
        for d in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, d] += h
            minus.positions[a, d] -= h
            numeric = -(evaluate(model, plus)["energy"] - evaluate(model, minus)["energy"]) / (
                2 * h
            )
            assert forces[a, d] == pytest.approx(numeric[0], rel=1e-6, abs=1e-8)


def test_stress_is_the_strain_derivative():
    model = make_model()
    atoms = mixed_cell()
    stress = evaluate(model, atoms)["stress"][0]
    volume = atoms.get_volume()
    h = 1e-6
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = strain[b, a] = h / (2 if a != b else 1)
            energies = []
            for sign in (1, -1):
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell.array @ (np.eye(3) + sign * strain), scale_atoms=True)
                energies.append(evaluate(model, deformed)["energy"][0])
            numeric = (energies[0] - energies[1]) / (2 * h) / volume
            assert stress[a, b] == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    np.testing.assert_allclose(stress, stress.T, atol=1e-14)


def test_stress_of_an_open_system_is_refused():
    with pytest.raises(ValueError, match="stress is undefined for system 0"):
        evaluate(make_model(), molecule("H2O"), stress=True)


def test_smooth_as_a_neighbour_crosses_the_cutoff():
    model = make_model()
    energies, forces = [], []
    distances = CUTOFF + np.array([-2e-4, -1e-4, 0.0, 1e-4, 2e-4])
    for r in distances:
        atoms = Atoms("CuO", positions=[[0, 0, 0], [r, 0, 0]])
        out = evaluate(model, atoms)
        energies.append(out["energy"][0])
        forces.append(out["forces"][1, 0])
    beyond = energies[-1]
    assert np.allclose(energies[2:], beyond, atol=1e-14), "no interaction at or beyond r_c"
    assert abs(energies[0] - beyond) < 1e-12 and abs(forces[0]) < 1e-10
    assert forces[-1] == 0.0
    near = Atoms("CuO", positions=[[0, 0, 0], [CUTOFF - 0.5, 0, 0]])
    assert abs(evaluate(model, near)["energy"][0] - beyond) > 1e-6, "it does interact inside"


def test_batch_equals_each_system_alone():
    model = make_model()
    systems = [mixed_cell(), molecule("CH3CH2OH"), copper(reps=(1, 1, 2))]
    batch = from_atoms(systems).with_neighbors(CUTOFF)
    out = model(batch, compute_forces=True)
    start = 0
    for s, atoms in enumerate(systems):
        single = evaluate(model, atoms, stress=False)
        rows = slice(start, start + len(atoms))
        np.testing.assert_allclose(out["energy"][s].item(), single["energy"][0], rtol=1e-12)
        np.testing.assert_allclose(
            out["forces"][rows].detach().numpy(), single["forces"], rtol=1e-10, atol=1e-12
        )
        start += len(atoms)
    periodic = [mixed_cell(), copper()]
    stressed = model(from_atoms(periodic).with_neighbors(CUTOFF), compute_stress=True)
    for s, atoms in enumerate(periodic):
        np.testing.assert_allclose(
            stressed["stress"][s].detach().numpy(),
            evaluate(model, atoms)["stress"][0],
            rtol=1e-10,
            atol=1e-13,
        )


def test_wrapped_and_unwrapped_positions_agree():
    model = make_model()
    atoms = mixed_cell()
    shifted = atoms.copy()
    shifted.positions += np.array([2, -1, 3]) @ atoms.cell.array  # whole lattice vectors
    shifted.positions[::2] -= atoms.cell.array[1] * 2
    ref, out = evaluate(model, atoms), evaluate(model, shifted)
    np.testing.assert_allclose(out["energy"], ref["energy"], rtol=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=1e-10, atol=1e-12)
    wrapped = atoms.copy()
    wrapped.wrap()
    np.testing.assert_allclose(evaluate(model, wrapped)["energy"], ref["energy"], rtol=1e-12)


def test_supercell_energy_is_extensive():
    model = make_model()
    atoms = copper(reps=(1, 1, 1))
    small, big = evaluate(model, atoms), evaluate(model, atoms.repeat((2, 2, 2)))
    assert big["energy"][0] / small["energy"][0] == pytest.approx(8.0, rel=1e-12)
    np.testing.assert_allclose(big["stress"], small["stress"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(big["forces"][: len(atoms)], small["forces"], rtol=1e-9, atol=1e-12)


def test_dtype_is_the_models_own():
    default = torch.get_default_dtype()
    single = make_model(dtype="float32")
    assert torch.get_default_dtype() == default
    assert all(p.dtype == torch.float32 for p in single.parameters())
    atoms = mixed_cell()
    out32 = single(from_atoms(atoms, dtype=torch.float32).with_neighbors(CUTOFF))
    out64 = make_model(dtype="float64")(from_atoms(atoms).with_neighbors(CUTOFF))
    assert out32["energy"].dtype == torch.float32
    np.testing.assert_allclose(
        out32["energy"].detach().numpy(), out64["energy"].detach().numpy(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="graph is torch.float64, the model is torch.float32"):
        single(from_atoms(atoms).with_neighbors(CUTOFF))


def test_unknown_element_and_missing_edges():
    model = make_model()
    with pytest.raises(ValueError, match=r"not trained on \['Ag'\]"):
        model(from_atoms(bulk("Ag")).with_neighbors(CUTOFF))
    with pytest.raises(ValueError, match="no edges"):
        model(from_atoms(molecule("H2O")))
    with pytest.raises(ValueError, match="unknown PotentialConfig keys"):
        PotentialConfig.from_dict({"species": [1], "width": 3})
    with pytest.raises(ValueError, match="dtype"):
        PotentialConfig(species=[1], dtype="float16")
