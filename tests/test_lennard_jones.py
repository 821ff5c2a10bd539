"""The Lennard-Jones companion model: equal to ASE's Lennard-Jones calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones

from trajcast_engine.calculator import TrajcastCalculator
from trajcast_engine.nn.lennard_jones import LennardJonesConfig, LennardJonesPotential
from trajcast_engine.nn.model_io import load_model, save_model

PARAMS = {"sigma": 3.4, "epsilon": 0.0104}


def model(cutoff: float = 8.0) -> LennardJonesPotential:
    return LennardJonesPotential(LennardJonesConfig(species=[18], cutoff=cutoff, **PARAMS))


def liquid_like() -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.6, cubic=True).repeat(3) * (1, 1, 1)
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.05, 0], [0, 1, 0], [0, 0, 1]]),
                   scale_atoms=True)  # fmt: skip
    atoms.rattle(0.15, seed=2)
    return atoms


def cluster() -> Atoms:
    rng = np.random.default_rng(1)
    return Atoms("Ar13", positions=rng.uniform(0, 9, (13, 3)) + 3.0 * np.arange(13)[:, None] % 7)


@pytest.mark.parametrize("build", [liquid_like, cluster])
def test_energy_forces_and_stress_match_ase(build, tmp_path):
    atoms = build()
    reference = atoms.copy()
    reference.calc = LennardJones(rc=8.0, smooth=False, **PARAMS)
    path = save_model(model(), tmp_path / "lj.pt")
    atoms.calc = TrajcastCalculator(load_model(path), dtype="float64")
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(),
                                                         rel=1e-10, abs=1e-12)  # fmt: skip
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-10)
    if atoms.pbc.all():
        np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=1e-10)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="one species"):
        LennardJonesConfig(species=[18, 36], cutoff=8.0, **PARAMS)
    with pytest.raises(ValueError, match="sigma and epsilon must be > 0"):
        LennardJonesConfig(species=[18], cutoff=8.0, sigma=-1, epsilon=0.01)
    with pytest.raises(ValueError, match="unknown LennardJonesConfig keys"):
        LennardJonesConfig.from_dict({"species": [18], "cutoff": 8.0, "colour": 1, **PARAMS})
    atoms = bulk("Cu", cubic=True)
    atoms.calc = TrajcastCalculator(model())
    with pytest.raises(ValueError, match="not trained on"):
        atoms.get_potential_energy()
