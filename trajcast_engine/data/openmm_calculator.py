"""OpenMM force fields as an ASE calculator, for reference MD of molecules and water.

``OpenMMCalculator(pdb="molecule.pdb")`` builds an OpenMM system from the PDB's topology
with a force field that ships with OpenMM (default amber14: ``amber14-all.xml``, plus
``amber14/tip3pfb.xml`` for water), fully flexible (no constraints, flexible water) so that
every degree of freedom moves as the forecaster will see it. A PDB without a periodic box
is a molecule in vacuum (no cutoff); with a box, PME with a 9 Å cutoff.

Units: OpenMM's kJ/mol and nm are converted to ASE's eV and Å
(1 eV = 96.485332 kJ/mol). Atom order is the PDB's, as ``ase.io.read`` returns it.
Needs ``openmm`` (the ``[reference]`` extra).

    trajcast generate --structure ala2.pdb --timestep 0.5 \\
        --calculator trajcast_engine.data.openmm_calculator:OpenMMCalculator --param pdb=ala2.pdb
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

KJ_PER_MOL_PER_EV = 96.48533212


class OpenMMCalculator(Calculator):
    """Energy and forces of an OpenMM force field for the atoms of one PDB topology."""

    implemented_properties = ["energy", "forces"]

    def __init__(
        self,
        pdb: str | os.PathLike,
        forcefield: Sequence[str] = ("amber14-all.xml", "amber14/tip3pfb.xml"),
        platform: str = "CPU",
        threads: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        try:
            import openmm
            from openmm import app, unit
        except ImportError:
            raise ValueError(
                "OpenMMCalculator needs openmm: pip install 'trajcast-engine[reference]'"
            ) from None
        if not os.path.isfile(pdb):
            raise FileNotFoundError(f"PDB file not found: {pdb}")
        structure = app.PDBFile(str(pdb))
        self.topology = structure.topology
        periodic = self.topology.getPeriodicBoxVectors() is not None
        try:
            system = app.ForceField(*forcefield).createSystem(
                self.topology,
                nonbondedMethod=app.PME if periodic else app.NoCutoff,
                nonbondedCutoff=0.9 * unit.nanometer,
                constraints=None,
                rigidWater=False,
            )
        except ValueError as err:
            raise ValueError(f"force field {list(forcefield)} cannot type {pdb}: {err}") from None
        self.n_atoms = system.getNumParticles()
        properties = {"Threads": str(int(threads))} if platform == "CPU" else {}
        self._context = openmm.Context(
            system,
            openmm.VerletIntegrator(0.001),  # never stepped: energies and forces only
            openmm.Platform.getPlatformByName(platform),
            properties,
        )
        self._unit = unit

    def calculate(self, atoms: Atoms | None = None, properties=None,
                  system_changes=all_changes) -> None:  # fmt: skip
        """Energy (eV) and forces (eV/Å) of ``atoms`` from the OpenMM context."""
        super().calculate(atoms, properties, system_changes)
        if len(self.atoms) != self.n_atoms:
            raise ValueError(
                f"the atoms have {len(self.atoms)} atoms, the OpenMM topology {self.n_atoms}"
            )
        if self.atoms.pbc.any():
            a, b, c = self.atoms.cell.array * 0.1
            self._context.setPeriodicBoxVectors(a, b, c)
        self._context.setPositions(self.atoms.positions * 0.1)  # nm
        state = self._context.getState(getEnergy=True, getForces=True)
        u = self._unit
        energy = state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
        self.results["energy"] = energy / KJ_PER_MOL_PER_EV
        self.results["forces"] = np.asarray(forces) / (10.0 * KJ_PER_MOL_PER_EV)
