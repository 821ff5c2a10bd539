"""The large-timestep integrator inside a plain ASE script, with observers.

Each step advances the forecaster's stride (20 fs for the shipped Cu model) without a
single force evaluation; the CSVR thermostat keeps 600 K; an observer prints the
per-element temperatures and the trajectory writer records every fifth step.

    python examples/forecaster_in_ase.py             # 10 ps
    python examples/forecaster_in_ase.py --fast      # a few steps (what CI runs)
"""

import argparse

import mdtraj
import numpy as np
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from integrators import ForecastCSVR
from trajcast_engine.trajectory import TrajectoryWriter

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true")
parser.add_argument("--output", default="forecaster_in_ase.h5")
args = parser.parse_args()

atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(1))
Stationary(atoms)
dyn = ForecastCSVR(atoms, "cu-emt-forecaster", temperature_K=600, seed=1)
print(f"stride {dyn.timestep_fs:g} fs, thermostat {dyn.rollout.thermostat}")


def report() -> None:
    per_element = ", ".join(f"{s} {t:.0f} K" for s, t in dyn.get_species_temperatures().items())
    print(f"step {dyn.nsteps:4d}  t = {dyn.get_time() / dyn.dt * dyn.timestep_fs / 1000:6.2f} ps"
          f"  T = {dyn.get_temperature():6.1f} K  ({per_element})")  # fmt: skip


dyn.attach(report, interval=50)
with TrajectoryWriter(args.output, atoms, overwrite=True) as writer:
    dyn.attach(writer, interval=5)
    dyn.run(10 if args.fast else 500)
traj = mdtraj.load(args.output)
print(f"{args.output}: {traj.n_frames} frames, {traj.time[-1]:.2f} ps")
