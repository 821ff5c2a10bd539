"""Regenerate the reference data of the shipped liquid-argon forecaster and retrain it on a CPU.

Reference: Lennard-Jones argon (σ = 3.40 Å, ε = 0.0104 eV = 120.7 K·k_B, cut at 3σ and
shifted; asap3's compiled LJ when installed, the ``[reference]`` extra, ASE's otherwise),
256 atoms in a cubic box at the density of Rahman's liquid (1.374 g/cm³, L = 23.13 Å),
90-135 K, MD step 2 fs. Each temperature: the fcc start is melted for 4 ps at 300 K, then
6 ps NVT equilibration at the target and four 20 ps NVE segments separated by 2 ps of NVT,
frames every 5 steps. The forecaster strides 10 reference steps (20 fs). Pairs start every
``--every`` frames, with time-reversal augmentation; whole segments are held out for
validation.

Why argon and not water: the TrajCast water model (6 Å cutoff, ~90 neighbours per atom,
0.4% velocity error needed at a 5 fs stride) is a GPU-scale training job; this liquid
trains on two CPU cores.

    python examples/train_ar_lj_forecaster.py                 # data (about 1 min), training
    python examples/train_ar_lj_forecaster.py --minutes 5     # a shorter training budget

The defaults are the first stage of the shipped weights (lmax 2, 0.012 Å input-position
noise; early stopping ended it after 7 epochs, 53 min); the second stage continues from
its last epoch with the noise halved, which sets the liquid's structure (see the model
card's noise scan)::

    python examples/train_ar_lj_forecaster.py --output first.pt
    python examples/train_ar_lj_forecaster.py --init-from first.pt.last --noise 0.006 \
        --learning-rate 1e-3 --epochs 2 --minutes 16 --output second.pt

and a third stage trains on chains of four strides (the rollout loss: each forecast fed
back as the next input, 80 fs, gradients through the chain), which brought the liquid's
structure within the RDF target (model card)::

    python examples/train_ar_lj_forecaster.py --init-from second.pt --noise 0.006 \
        --learning-rate 1e-3 --rollout-steps 4 --every 16 --epochs 2 \
        --select-by rollout_velocity_relative

The built-in structure of ``trajcast simulate`` is the last frame of the 105 K data
(``trajcast_engine/models/systems/liquid_argon_256.extxyz``).

Writes the data under ``runs/ar_lj_2fs/`` and the model to
``trajcast_engine/models/ar_lj_forecaster.pt`` (``--output`` to put it elsewhere).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from trajcast_engine.generate import generate
from trajcast_engine.nn.forecaster import ForecasterConfig
from trajcast_engine.nn.lennard_jones import LennardJonesConfig, LennardJonesPotential
from trajcast_engine.nn.model_io import save_model
from trajcast_engine.train.fit_forecaster import (
    ForecastFitSettings,
    epoch_summary,
    fit_forecaster,
)

TEMPERATURES = (90, 105, 120, 135)
LJ = {"sigma": 3.40, "epsilon": 0.0104, "rc": 10.2}
DENSITY_G_CM3 = 1.374
ROOT = Path(__file__).resolve().parents[1]


def reference_calculator() -> str:
    try:
        import asap3  # noqa: F401

        return "asap-lj"
    except ImportError:
        return "lj"


def argon_box(cells: int = 4) -> Atoms:
    """cells³·4 argon atoms on an fcc lattice at the liquid density (melted in the run)."""
    volume = 4 * cells**3 * 39.948 / (DENSITY_G_CM3 * 0.602214076)  # Å³
    return bulk("Ar", "fcc", a=(volume / cells**3) ** (1 / 3), cubic=True).repeat(cells)


def make_data(data: Path, calculator: str, segment_steps: int) -> list[Path]:
    """The reference segments under ``data`` (temperatures already there are kept)."""
    data.mkdir(parents=True, exist_ok=True)
    return generate(
        argon_box(), calculator=calculator, parameters=LJ, temperature=TEMPERATURES,
        output=data / "ar.h5", overwrite=True, reuse_existing=True, md_timestep=2.0,
        melt_temperature=300.0, melt_steps=2000, equilibration_steps=3000, segments=4,
        segment_steps=segment_steps, decorrelation_steps=1000, write_every=5, seed=200,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "ar_lj_2fs")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "trajcast_engine" / "models" / "ar_lj_forecaster.pt"
    )
    parser.add_argument("--minutes", type=float, default=75.0, help="training time budget")
    parser.add_argument("--every", type=int, default=8, help="start a pair every n frames")
    parser.add_argument("--segment-steps", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.012, help="training position noise, Å")
    parser.add_argument("--select-by", default="loss", help="validation metric for the best epoch")
    parser.add_argument("--init-from", help="continue from this model file's weights")
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--reversibility-weight", type=float, default=0.0,
                        help="weight of the run-back (time-reversibility) loss")  # fmt: skip
    parser.add_argument("--rollout-steps", type=int, default=1,
                        help="strides chained in the loss (1: one-step pairs)")  # fmt: skip
    parser.add_argument("--lmax", type=int, default=2, help="highest edge harmonic")
    parser.add_argument("--data-only", action="store_true", help="generate the data and stop")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)

    # the exact companion: the reference potential itself, for energy rescaling and
    # `trajcast simulate --engine mlip`
    companion = LennardJonesConfig(species=[18], sigma=LJ["sigma"], epsilon=LJ["epsilon"],
                                   cutoff=LJ["rc"])  # fmt: skip
    save_model(LennardJonesPotential(companion), args.output.with_name("ar_lj_potential.pt"),
               {"name": "ar-lj-potential", "system": "argon",
                "script": "examples/train_ar_lj_forecaster.py"})  # fmt: skip
    calculator = reference_calculator()
    sources = make_data(args.data, calculator, args.segment_steps)
    if args.data_only:
        return
    config = ForecasterConfig(
        species=[18],
        cutoff=6.0,
        lmax=args.lmax,
        channels=16,
        num_layers=3,
        radial_hidden=32,
        radial_layers=2,
        both_parities=False,
        dtype="float32",
        md_timestep=2.0,
        stride=10,
    )
    settings = ForecastFitSettings(
        epochs=args.epochs,
        batch_size=4,
        learning_rate=args.learning_rate,
        validation_fraction=0.1,
        lr_patience=2,
        early_stopping=6,
        ema_decay=0.99,
        every=args.every,
        time_reversal=True,
        max_seconds=60.0 * args.minutes,
        position_noise=args.noise,
        select_by=args.select_by,
        init_from=args.init_from,
        rollout_steps=args.rollout_steps,
        reversibility_weight=args.reversibility_weight,
    )

    metadata = {
        "name": "ar-lj-forecaster",
        "system": "liquid argon, 256 atoms, 1.374 g/cm³, 90-135 K",
        "reference": f"{calculator} MD (σ 3.40 Å, ε 0.0104 eV, cut 10.2 Å), 2 fs step",
        "script": "examples/train_ar_lj_forecaster.py",
        "companion": "ar-lj-potential",
        "energy_rescale": "ar-lj-potential",
        "thermostat_tau_fs": 200.0,
        "temperature_K": 100.0,  # trajcast simulate's default for this model
    }

    def log(row: dict) -> None:
        print(epoch_summary(row), flush=True)

    result = fit_forecaster(sources, config, settings, args.output, log, metadata)
    print("validation:", result.validation)
    print("saved", args.output)


if __name__ == "__main__":
    main()
