"""OpenMM force fields behind the ASE calculator interface (reference MD of molecules)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

pytest.importorskip("openmm")

from trajcast_engine.data.openmm_calculator import KJ_PER_MOL_PER_EV, OpenMMCalculator  # noqa: E402
from trajcast_engine.models import system_file  # noqa: E402

PDB = str(system_file("ala2-amber-forecaster"))


def test_forces_are_minus_the_energy_gradient_in_ev_and_angstrom():
    atoms = read(PDB)
    atoms.rattle(0.02, seed=3)
    atoms.calc = OpenMMCalculator(PDB, platform="Reference")
    forces = atoms.get_forces()
    step = 1e-4
    for i, axis in ((0, 0), (7, 1), (21, 2)):
        shifted = atoms.copy()
        shifted.calc = atoms.calc
        shifted.positions[i, axis] += step
        e_plus = shifted.get_potential_energy()
        shifted.positions[i, axis] -= 2 * step
        e_minus = shifted.get_potential_energy()
        assert forces[i, axis] == pytest.approx(-(e_plus - e_minus) / (2 * step), rel=1e-4,
                                                abs=1e-5)  # fmt: skip


def test_energy_is_openmms_in_ev():
    import openmm
    from openmm import app, unit

    pdb = app.PDBFile(PDB)
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology, constraints=None)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))  # fmt: skip
    context.setPositions(pdb.positions)
    expected = context.getState(getEnergy=True).getPotentialEnergy()
    atoms = read(PDB)
    atoms.calc = OpenMMCalculator(PDB, platform="Reference")
    assert atoms.get_potential_energy() == pytest.approx(
        expected.value_in_unit(unit.kilojoule_per_mole) / KJ_PER_MOL_PER_EV, rel=1e-9
    )
    assert np.isfinite(atoms.get_forces()).all()


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="PDB file not found"):
        OpenMMCalculator(tmp_path / "missing.pdb")
    atoms = read(PDB)[:5]
    atoms.calc = OpenMMCalculator(PDB, platform="Reference")
    with pytest.raises(ValueError, match="the atoms have 5 atoms, the OpenMM topology 22"):
        atoms.get_potential_energy()
