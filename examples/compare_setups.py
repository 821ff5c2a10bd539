"""Run one forecaster under several thermostat / energy-rescaling set-ups side by side
against one reference MD run, and print the validation metrics of each.

Each set-up is ``THERMOSTAT:TAU_FS:RESCALE`` (``csvr``, ``langevin`` or ``none``; tau in
fs; ``rescale`` for the model card's energy rescaling, ``none`` without it). For a crystal
(a built-in lattice) the RMS displacement from the lattice sites is printed too: a
rollout that loses equipartition lets its slow modes heat and drifts from the sites.
This is how the model cards' thermostat choices were measured, e.g.

    python examples/compare_setups.py cu-emt-forecaster --frames 600 \\
        csvr:200:rescale csvr:200:none langevin:1000:rescale

The reference is the validation's (fresh seed, CSVR at the reference step); the first
``--burn`` frames of every run are discarded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from validate_forecaster import SETUPS, reference_run, structure_file, summary_line

from trajcast_engine import analysis
from trajcast_engine.data.pairs import minimum_image
from trajcast_engine.models import default_system, shipped_model_path
from trajcast_engine.nn.model_io import read_model_file
from trajcast_engine.simulate import simulate


def rms_from_sites(data: analysis.TrajectoryData, lattice: Atoms) -> float:
    """RMS displacement (Å) from the sites of ``lattice``, minimum image, drift removed."""
    d = data.positions - lattice.get_positions()[None]
    d = minimum_image(d.reshape(-1, 3), lattice.cell.array, lattice.pbc).reshape(d.shape)
    d -= d.mean(axis=1, keepdims=True)
    return float(np.sqrt((d**2).sum(-1).mean()))


def parse(setup: str) -> dict:
    try:
        thermostat, tau, rescale = setup.split(":")
        if thermostat not in ("csvr", "langevin", "none") or rescale not in ("rescale", "none"):
            raise ValueError
        kwargs = {"thermostat": thermostat, "tau": float(tau)}
    except ValueError:
        raise SystemExit(f"bad set-up {setup!r}: want THERMOSTAT:TAU_FS:RESCALE, "
                         "e.g. csvr:200:rescale") from None  # fmt: skip
    if rescale == "none":
        kwargs["energy_rescale"] = "none"
    return kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SETUPS))
    parser.add_argument("setups", nargs="+", help="THERMOSTAT:TAU_FS:RESCALE")
    parser.add_argument("--model-file", type=Path, help="run this file with the set-ups")
    parser.add_argument("--temperature", type=float, help="K (default: the validation's first)")
    parser.add_argument("--frames", type=int, default=600, help="frames (strides) compared")
    parser.add_argument("--burn", type=int, default=100, help="frames discarded first")
    args = parser.parse_args()
    setups = [(s, parse(s)) for s in args.setups]
    setup = SETUPS[args.model]
    model = args.model_file or shipped_model_path(args.model)
    config = read_model_file(model)["config"]
    md_step, stride = float(config["md_timestep"]), int(config["stride"])
    temperature = args.temperature or setup.temperatures[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        structure, crystal = structure_file(args.model, tmp)
        start = time.perf_counter()
        ref = reference_run(args.model, setup, md_step, stride, temperature,
                            args.frames + args.burn, 9000, tmp / "ref.h5")  # fmt: skip
        print(f"reference MD at {temperature:g} K: {time.perf_counter() - start:.0f} s")
        reference = analysis.load(ref, start=args.burn)
        n_dof = analysis.degrees_of_freedom(reference)
        lattice = default_system(args.model)

        def extra(data: analysis.TrajectoryData) -> str:
            return f"  RMS from sites {rms_from_sites(data, lattice):.4f} Å" if crystal else ""

        print(f"reference{extra(reference)}")
        for k, (name, kwargs) in enumerate(setups):
            out = tmp / f"run{k}.h5"
            report = simulate(model, structure, temperature=temperature,
                              steps=args.frames + args.burn, output=out, seed=1,
                              progress=False, **kwargs)  # fmt: skip
            run = analysis.load(out, start=args.burn)
            metrics = analysis.compare(
                run, reference, n_dof, diffusion=setup.liquid,
                neighbour_cutoff=setup.neighbour_cutoff,
            )  # fmt: skip
            print(f"{name}  ({report.wall_seconds:.0f} s): {summary_line(metrics)}{extra(run)}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
