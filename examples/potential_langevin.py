"""The shipped equivariant potential as an ordinary ASE calculator, with ASE's Langevin.

python examples/potential_langevin.py            # 2 ps at 500 K, 108 Cu atoms
python examples/potential_langevin.py --fast     # a few steps (what CI runs)
"""

import argparse

import numpy as np
from ase import units
from ase.build import bulk
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from trajcast_engine.calculator import TrajcastCalculator
from trajcast_engine.models import shipped_model_path

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true")
args = parser.parse_args()

atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"))
MaxwellBoltzmannDistribution(atoms, temperature_K=500, rng=np.random.default_rng(0))
atoms.set_constraint(FixCom())  # with fixcm=False: ASE 3.29's correct NVT
dyn = Langevin(atoms, 2 * units.fs, temperature_K=500, friction=0.02 / units.fs, fixcm=False)
dyn.attach(lambda: print(f"t = {dyn.get_time() / units.fs:6.0f} fs  "
                         f"E_pot = {atoms.get_potential_energy():9.4f} eV  "
                         f"T = {atoms.get_temperature():6.1f} K"), interval=100)  # fmt: skip
dyn.run(10 if args.fast else 1000)
print("stress (eV/Å³):", np.round(atoms.get_stress(), 5))
