"""Train a forecaster on your own trajectories (here: EMT copper made on the spot).

Bring any trajectories with velocities (this engine's HDF5, ASE .traj, extxyz; for the
latter give the time between frames) and pick a stride that is a whole number of frame
spacings. Several trajectories (or NVE segments) are needed: validation takes whole ones.

    python examples/train_own_forecaster.py          # a few minutes
    python examples/train_own_forecaster.py --fast   # seconds (what CI runs)
"""

import argparse
from pathlib import Path

from ase.build import bulk

from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md
from trajcast_engine.nn.forecaster import ForecasterConfig
from trajcast_engine.train.fit_forecaster import ForecastFitSettings, fit_forecaster

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true")
parser.add_argument("--workdir", type=Path, default=Path("my_forecaster"))
args = parser.parse_args()
args.workdir.mkdir(exist_ok=True)

# 1. your MD: here three NVE segments of EMT copper at 600 K, a frame every 5 fs
settings = ReferenceSettings(
    temperature=600, md_timestep=1.0, equilibration_steps=200 if args.fast else 2000,
    segments=3, segment_steps=200 if args.fast else 4000, write_every=5,
)  # fmt: skip
cell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2 if args.fast else 3)
trajectories = run_reference_md(cell, "emt", settings, args.workdir / "md.h5", overwrite=True)

# 2. a forecaster striding 10 reference steps (10 fs), small enough for a CPU
config = ForecasterConfig(
    species=[29], cutoff=4.0, lmax=1, channels=8 if args.fast else 16, num_layers=2,
    radial_hidden=16, both_parities=False, md_timestep=1.0, stride=10, dtype="float32",
)  # fmt: skip
fit = ForecastFitSettings(epochs=2 if args.fast else 30, batch_size=4, validation_fraction=0.34)


def log(row: dict) -> None:
    print(f"epoch {row['epoch']}: validation loss {row['val_loss']:.4f}")


result = fit_forecaster(trajectories, config, fit, args.workdir / "forecaster.pt", log)
print("relative velocity error:", round(result.validation["velocity_relative"], 4))
print("use it:  trajcast simulate --model", args.workdir / "forecaster.pt", "--structure ...")
