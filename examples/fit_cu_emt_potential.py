"""Fit the engine's equivariant potential to ASE's EMT copper, from scratch on a CPU.

1. Reference data: fcc Cu (32 atoms) in Langevin MD with EMT at 300, 600, 900 and
   1200 K, each run in a cell strained by up to ±2%, sampled every 25 fs after 0.5 ps
   of equilibration: energies, forces and stresses written to extxyz.
2. Fit: a small model (lmax 2, 16 channels, 2 layers, 4.5 Å cutoff) on energies,
   forces and stresses, 90/10 train/validation split.
3. Report held-out errors and save the model file.

    python examples/fit_cu_emt_potential.py                     # full (about 10 min)
    python examples/fit_cu_emt_potential.py --frames 40 --epochs 3 --out /tmp/cu.pt  # smoke
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from ase.md.langevin import Langevin

from trajcast_engine.data import labelled_copy
from trajcast_engine.train import FitSettings, fit_potential

TEMPERATURES_K = (300, 600, 900, 1200)


def reference_frames(n_frames: int, seed: int) -> list:
    """EMT-labelled snapshots of fcc Cu across temperatures and strains."""
    rng = np.random.default_rng(seed)
    frames = []
    per_run = max(1, n_frames // (2 * len(TEMPERATURES_K)))
    runs = [(t, r) for r in range(2) for t in TEMPERATURES_K]
    for temperature, _ in runs:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3)) * (np.ones((3, 3)) + np.eye(3)) / 2
        atoms.set_cell(atoms.cell.array @ (strain + strain.T) / 2, scale_atoms=True)
        atoms.calc = EMT()
        sigma = np.sqrt(temperature * units.kB / atoms.get_masses())[:, None]
        atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * sigma)
        dyn = Langevin(
            atoms, 5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng
        )
        dyn.run(100)  # equilibrate 0.5 ps
        for _ in range(per_run):
            dyn.run(5)
            frame = labelled_copy(atoms)
            frames.append(frame)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("cu_emt_frames.extxyz"))
    parser.add_argument("--out", type=Path, default=Path("cu_emt_potential.pt"))
    args = parser.parse_args()

    start = time.perf_counter()
    frames = reference_frames(args.frames, args.seed)
    write(args.data, frames)
    print(f"{len(frames)} EMT frames in {time.perf_counter() - start:.0f} s -> {args.data}")

    config = dict(
        species=[29],
        cutoff=4.5,
        lmax=2,
        channels=16,
        num_layers=2,
        num_basis=8,
        radial_hidden=32,
        dtype="float32",
    )
    settings = FitSettings(
        epochs=args.epochs,
        batch_size=4,
        learning_rate=5e-3,
        force_weight=10.0,
        stress_weight=100.0,
        early_stopping=30,
        seed=args.seed,
    )

    def log(row: dict) -> None:
        if row["epoch"] % 5 == 0:
            print(
                f"epoch {row['epoch']:4d}  train {row['train_loss']:.5f}  "
                f"val E {1e3 * row['val_energy_mae']:.2f} meV/atom  "
                f"F {1e3 * row['val_forces_mae']:.1f} meV/Å  lr {row['lr']:.2e}",
                flush=True,
            )

    result = fit_potential([args.data], config, settings, checkpoint=args.out, log=log)
    v = result.validation
    print(f"\nheld-out frames: {result.model.metadata['training']['validation_frames']}")
    print(f"energy MAE {1e3 * v['energy_mae']:.2f} meV/atom, RMSE {1e3 * v['energy_rmse']:.2f}")
    print(f"force  MAE {1e3 * v['forces_mae']:.1f} meV/Å,  RMSE {1e3 * v['forces_rmse']:.1f}")
    if "stress" in v:
        print(f"stress RMSE {1e3 * v['stress'] ** 0.5:.3f} meV/Å^3")
    print(f"saved {args.out} ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
