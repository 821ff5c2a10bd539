"""Analyse a trajcast HDF5 trajectory with mdtraj (and read what mdtraj drops).

    python examples/analyse_with_mdtraj.py trajectory.h5

``mdtraj.load`` gives positions (nm), time (ps) and the unit cell; velocities and
energies are read with mdtraj's ``HDF5TrajectoryFile`` (nm/ps, kJ/mol), or in engine
units (Å, Å/fs, eV) with trajcast's own reader.
"""

import argparse

import mdtraj
import numpy as np
from mdtraj.formats import HDF5TrajectoryFile

from trajcast_engine.trajectory import TrajectoryReader

parser = argparse.ArgumentParser()
parser.add_argument("trajectory")
args = parser.parse_args()

traj = mdtraj.load(args.trajectory)
print(f"{traj.n_frames} frames, {traj.n_atoms} atoms, {traj.time[-1]:.3f} ps")
pairs = traj.topology.select_pairs("all", "all")
r, g = mdtraj.compute_rdf(traj, pairs, r_range=(0.0, min(0.6, traj.unitcell_lengths.min() / 2)))
print(f"RDF first peak at {10 * r[np.argmax(g)]:.3f} Å (height {g.max():.2f})")
with HDF5TrajectoryFile(args.trajectory) as f:
    data = f.read()
    if data.velocities is not None:
        print(f"mean |v| = {np.linalg.norm(data.velocities, axis=2).mean():.4f} nm/ps")
    if data.temperature is not None:
        print(f"mean T = {data.temperature.mean():.1f} K")
with TrajectoryReader(args.trajectory) as reader:
    last = reader[-1]
    print(f"last frame at {last.info['time_fs']:.0f} fs, ASE Atoms with velocities: "
          f"{last.has('momenta')}")  # fmt: skip
