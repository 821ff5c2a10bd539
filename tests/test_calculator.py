"""The ASE calculator behaves as ASE users expect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from trajcast_engine.calculator import TrajcastCalculator
from trajcast_engine.models import shipped_model_path
from trajcast_engine.nn.model_io import save_model
from trajcast_engine.nn.potential import EquivariantPotential, PotentialConfig


def random_model(**changes) -> EquivariantPotential:
    torch.manual_seed(2)
    config = dict(
        species=[1, 6, 8, 29],
        cutoff=4.0,
        channels=4,
        num_layers=2,
        avg_num_neighbors=10.0,
        energy_scale=0.3,
    )
    config.update(changes)
    return EquivariantPotential(PotentialConfig(**config))


def copper(reps=2, rattle=0.05):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(rattle, seed=4)
    return atoms


def test_properties_and_their_consistency():
    atoms = copper()
    atoms.calc = TrajcastCalculator(random_model())
    energy = atoms.calc.get_property("energy", atoms)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, rel=1e-12)
    assert atoms.get_forces().shape == (32, 3)
    assert np.abs(atoms.get_forces().sum(axis=0)).max() < 1e-10, "Newton's third law"
    stress = atoms.get_stress()
    assert stress.shape == (6,)
    full = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(full, full.T)


def test_results_are_cached_until_atoms_change(monkeypatch):
    model = random_model()
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    atoms = copper()
    atoms.calc = TrajcastCalculator(model)
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_potential_energy()
    assert len(calls) == 1, "energy and forces come from one evaluation"
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert len(calls) == 2


def test_unknown_elements_and_open_system_stress():
    atoms = bulk("Ag", cubic=True)
    atoms.calc = TrajcastCalculator(random_model())
    with pytest.raises(ValueError, match=r"not trained on \['Ag'\]"):
        atoms.get_potential_energy()
    water = molecule("H2O")
    water.calc = TrajcastCalculator(random_model())
    assert np.isfinite(water.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="stress is undefined"):
        water.get_stress()


def test_model_file_dtype_and_atoms_copy(tmp_path):
    path = save_model(random_model(), tmp_path / "m.pt")
    atoms = copper()
    calc = TrajcastCalculator(path, dtype="float32")
    assert calc.model.dtype == torch.float32
    atoms.calc = calc
    e32 = atoms.get_potential_energy()
    atoms.calc = TrajcastCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(e32, rel=1e-5)
    clone = atoms.copy()  # ASE does not copy the calculator: attach ours to the copy
    clone.positions[3] += 0.05
    clone.calc = atoms.calc
    assert clone.get_potential_energy() != pytest.approx(e32, rel=1e-9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="device 'cuda' was asked for"):
        TrajcastCalculator(random_model(), device="cuda")


def test_optimiser_lowers_the_energy():
    atoms = copper(rattle=0.15)
    atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"), dtype="float64")
    start = atoms.get_potential_energy()
    fmax0 = np.abs(atoms.get_forces()).max()
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=100)
    assert atoms.get_potential_energy() < start
    assert np.abs(atoms.get_forces()).max() < min(0.01 + 1e-9, fmax0)


@pytest.mark.slow
def test_nve_with_the_fitted_model_conserves_energy():
    """VelocityVerlet at 2 fs for 1 ps from 600 K, 32 atoms, float64: total-energy drift."""
    atoms = copper(reps=2, rattle=0.0)
    atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"), dtype="float64")
    rng = np.random.default_rng(0)
    sigma = np.sqrt(600 * units.kB / atoms.get_masses())[:, None]
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * sigma)
    dyn = VelocityVerlet(atoms, timestep=2.0 * units.fs)
    totals = []
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), interval=5)
    dyn.run(500)
    totals = np.array(totals) / len(atoms)
    drift_per_ps = abs(np.polyfit(np.arange(len(totals)) * 10e-3, totals, 1)[0])
    print(f"NVE drift {drift_per_ps * 1e3:.4f} meV/atom/ps, spread {np.ptp(totals) * 1e3:.3f} meV")
    assert drift_per_ps < 1e-3, f"drift {drift_per_ps * 1e3:.4f} meV/atom/ps"
    assert np.ptp(totals) < 5e-3, "total energy stays within 5 meV/atom"
    # from a perfect lattice, equipartition brings 600 K down to about 300 K
    assert 150 < atoms.get_temperature() < 450


def test_langevin_runs_with_the_calculator():
    atoms = copper()
    atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"))
    dyn = Langevin(
        atoms,
        2 * units.fs,
        temperature_K=500,
        friction=0.05,
        fixcm=False,
        rng=np.random.default_rng(1),
    )
    dyn.run(20)
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_temperature() > 50
    assert atoms.calc.neighbors.n_builds < 21, "the skin list is reused between steps"
