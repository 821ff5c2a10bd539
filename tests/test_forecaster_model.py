"""The forecaster obeys the symmetries and conservation laws a user relies on (float64).

Random-weight models: equivariance and the conservation layer hold for any weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from trajcast_engine.graph import from_atoms
from trajcast_engine.nn.conservation import angular_momenta, centres_of_mass, momenta
from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster
from trajcast_engine.nn.model_io import load_model, save_model

CUTOFF = 4.0


def make_forecaster(seed: int = 0, **changes) -> TrajCastForecaster:
    torch.manual_seed(seed)
    config = dict(
        species=[1, 6, 8, 29],
        cutoff=CUTOFF,
        channels=6,
        num_layers=2,
        num_basis=6,
        radial_hidden=16,
        avg_num_neighbors=10.0,
        md_timestep=0.5,
        stride=10,
        displacement_scale=0.1,
        velocity_scale=0.02,
    )
    config.update(changes)
    return TrajCastForecaster(ForecasterConfig(**config)).eval()


def with_velocities(atoms: Atoms, seed: int, scale: float = 0.03, drift: bool = True) -> Atoms:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(atoms), 3)) * scale
    if not drift:
        m = atoms.get_masses()
        v -= (m[:, None] * v).sum(0) / m.sum()
    atoms.set_velocities(v / 0.09822694788464063)  # Å/fs -> ASE units
    return atoms


def crystal(seed=0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.15, seed=seed)
    atoms.numbers[[1, 5]] = 8
    atoms.cell[0, 1] = 0.7  # triclinic
    return with_velocities(atoms, seed)


def organic(seed=0) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=seed)
    return with_velocities(atoms, seed)


def predict(model, atoms, **kw):
    graph = from_atoms(atoms).with_neighbors(CUTOFF)
    with torch.no_grad():
        out = model(graph, **kw)
    return out["displacements"].numpy(), out["velocities"].numpy()


def relative_error(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("make", [crystal, organic])
@pytest.mark.parametrize("improper", [False, True])
def test_rotation_reflection_translation_equivariance(make, improper):
    model = make_forecaster(both_parities=improper)
    atoms = make()
    dr, v = predict(model, atoms)
    assert np.abs(dr).max() > 1e-4 and np.abs(v).max() > 1e-4  # a non-trivial forecast
    r, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    r *= np.sign(np.linalg.det(r))  # a proper rotation
    if improper:
        r = -r
    moved = atoms.copy()
    moved.positions = atoms.positions @ r.T + np.array([1.3, -2.1, 0.4])
    cell = atoms.cell.array @ r.T
    if improper:
        cell = cell[[1, 0, 2]]  # the same lattice, right-handed again
    moved.set_cell(cell, scale_atoms=False)
    moved.set_velocities(atoms.get_velocities() @ r.T)
    dr2, v2 = predict(model, moved)
    assert relative_error(dr2, dr @ r.T) < 1e-10
    assert relative_error(v2, v @ r.T) < 1e-10


def test_permutation_equivariance():
    model = make_forecaster()
    atoms = crystal(seed=2)
    dr, v = predict(model, atoms)
    order = np.random.default_rng(0).permutation(len(atoms))
    dr2, v2 = predict(model, atoms[order])
    assert relative_error(dr2, dr[order]) < 1e-10
    assert relative_error(v2, v[order]) < 1e-10


def test_wrapped_and_batched_equal_single():
    model = make_forecaster()
    a, b = crystal(seed=3), organic(seed=4)
    dr_a, v_a = predict(model, a)
    wrapped = a.copy()
    wrapped.positions += a.cell.array[0] * 1.0 + a.cell.array[2] * -2.0
    dr_w, v_w = predict(model, wrapped)
    assert relative_error(dr_w, dr_a) < 1e-10 and relative_error(v_w, v_a) < 1e-10
    graph = from_atoms([a, b]).with_neighbors(CUTOFF)
    with torch.no_grad():
        out = model(graph)
    dr_b, _ = predict(model, b)
    assert relative_error(out["displacements"].numpy()[len(a) :], dr_b) < 1e-10
    assert relative_error(out["velocities"].numpy()[: len(a)], v_a) < 1e-10


def test_momentum_is_kept_exactly_and_a_resting_centre_does_not_move():
    model = make_forecaster()
    for atoms in (crystal(seed=5), with_velocities(crystal(seed=6), 6, drift=False)):
        graph = from_atoms(atoms).with_neighbors(CUTOFF)
        with torch.no_grad():
            out = model(graph)
        p_in = momenta(graph.velocities, graph.masses, graph.system_idx, 1)
        p_out = momenta(out["velocities"], graph.masses, graph.system_idx, 1)
        assert torch.allclose(p_out, p_in, rtol=0, atol=1e-13 * float(p_in.abs().max() + 1))
        com_shift = centres_of_mass(
            graph.positions + out["displacements"], graph.masses, graph.system_idx, 1
        ) - centres_of_mass(graph.positions, graph.masses, graph.system_idx, 1)
        expected = p_in * model.timestep / graph.masses.sum()
        assert torch.allclose(com_shift, expected, rtol=0, atol=1e-13)
    # the second system had zero momentum: its centre of mass stayed put
    assert float(p_in.abs().max()) < 1e-12
    assert float(com_shift.abs().max()) < 1e-13


def test_requested_momentum_is_met():
    model = make_forecaster()
    graph = from_atoms(crystal(seed=7)).with_neighbors(CUTOFF)
    target = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    with torch.no_grad():
        out = model(graph, momentum=target)
    p = momenta(out["velocities"], graph.masses, graph.system_idx, 1)
    assert torch.allclose(p, target, rtol=0, atol=1e-12)


def test_angular_momentum_kept_for_a_molecule_when_asked():
    atoms = organic(seed=8)
    graph = from_atoms(atoms).with_neighbors(CUTOFF)
    l_in = angular_momenta(graph.positions, graph.velocities, graph.masses, graph.system_idx, 1)
    for keep in (False, True):
        model = make_forecaster(conserve_angular_momentum=keep)
        with torch.no_grad():
            out = model(graph)
        new = graph.positions + out["displacements"]
        l_out = angular_momenta(new, out["velocities"], graph.masses, graph.system_idx, 1)
        gap = float((l_out - l_in).abs().max() / l_in.abs().max())
        if keep:
            assert gap < 1e-12
            p = momenta(out["velocities"], graph.masses, graph.system_idx, 1)
            p_in = momenta(graph.velocities, graph.masses, graph.system_idx, 1)
            assert torch.allclose(p, p_in, atol=1e-13)
        else:
            assert gap > 1e-3  # the unconstrained forecast does change it
    # periodic systems have no angular momentum to keep: their dof count stays 3N - 3
    model = make_forecaster(conserve_angular_momentum=True)
    both = from_atoms([crystal(), atoms])
    assert model.constrained_dof(both).tolist() == [3, 6]
    assert model.constrained_dof(from_atoms(molecule("CO"))).tolist() == [5]  # linear


def test_model_file_round_trip_keeps_the_stride():
    model = make_forecaster(stride=14, md_timestep=0.5)
    atoms = crystal(seed=9)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(model, Path(tmp) / "f.pt", metadata={"system": "test"})
        payload = torch.load(path, weights_only=True)
        assert payload["kind"] == "forecaster"
        assert payload["config"]["stride"] == 14 and payload["config"]["md_timestep"] == 0.5
        loaded = load_model(path)
    assert loaded.timestep == pytest.approx(7.0)
    assert np.array_equal(predict(loaded, atoms)[1], predict(model, atoms)[1])


def test_bad_input_is_named():
    model = make_forecaster()
    graph = from_atoms(bulk("Ag", "fcc", a=4.1)).with_neighbors(CUTOFF)
    with pytest.raises(ValueError, match=r"not trained on \['Ag'\]"):
        model(graph.replace(velocities=torch.zeros_like(graph.positions)))
    graph = from_atoms(bulk("Cu", "fcc", a=3.6))
    with pytest.raises(ValueError, match="needs velocities"):
        model(graph.with_neighbors(CUTOFF))
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        ForecasterConfig(species=[29], stride=0)
    with pytest.raises(ValueError, match="unknown ForecasterConfig keys"):
        ForecasterConfig.from_dict({"species": [29], "horizon": 3})
