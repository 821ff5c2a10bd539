"""Where a crystal forecaster's energy goes, phonon band by phonon band.

Two checks on the harmonic Γ-point modes of the crystal (:mod:`trajcast_engine.phonons`,
force constants of the reference calculator):

- ``--model FILE --pairs H5 ...``: the energy one forecast keeps in each frequency band,
  ``Σ Ê_k(t + Δt) / Σ E_k(t + Δt)`` over reference pairs (forecast state against the
  reference's), and for the kinetic part alone. Exact dynamics keeps 1 in every band on
  average; a band below 1 loses that fraction of its energy every stride, which a global
  thermostat hands back to every band alike, so the band ends up cold and others hot.
  ``--states H5 ...`` takes the states of any run instead (a rollout's own, every
  ``--every`` frames from ``--start``), each followed one stride by exact velocity-Verlet
  MD with the reference calculator (:mod:`trajcast_engine.data.relabel`): the forecast's
  bias where the rollout actually goes. The ``±`` rows are bootstrap standard errors over
  the pairs: a band held to 1% in a rollout needs its energy kept to about 1e-4 a stride,
  which takes a few thousand pairs to see.
- ``--runs H5 ... --references H5 ...``: each band's kinetic and potential temperature,
  pooled over the runs, against the references (equipartition: every band at T).

    python examples/phonon_bands.py --model trajcast_engine/models/cu_emt_forecaster.pt \\
        --pairs runs/cu_emt_1fs/cu_300K_seg3.h5
    python examples/phonon_bands.py --model trajcast_engine/models/cu_emt_forecaster.pt \\
        --states runs/cu_val/rollout_300K*.h5 --start 250 --every 4
    python examples/phonon_bands.py --runs runs/cu_val/rollout_300K*.h5 \\
        --references runs/cu_val/reference_300K_seg0.h5 --start 250

The crystal is the copper model's 256-atom lattice unless ``--lattice`` names a structure
file (the sites) and ``--calculator`` its reference (default ``asap-emt``, else ASE's
``emt``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase.io import read

from trajcast_engine import analysis
from trajcast_engine.data.pairs import build_pairs, load_trajectory
from trajcast_engine.data.reference_md import make_calculator
from trajcast_engine.data.relabel import pairs_from_states
from trajcast_engine.models import default_system
from trajcast_engine.nn.model_io import load_model
from trajcast_engine.phonons import band_temperatures, harmonic_modes, mode_bands, mode_energies


def energy_kept(model, pairs, modes, edges) -> None:
    """Print the per-band energy (and kinetic energy) one forecast keeps on ``pairs``,
    forecast over reference state at t + Δt, with bootstrap standard errors over pairs."""
    n, n_bands = len(modes.sites), len(edges) - 1
    band = mode_bands(modes, edges)
    inside = (band >= 0) & (band < n_bands)

    def band_sums(values: np.ndarray) -> np.ndarray:  # per-mode values summed in each band
        return np.bincount(band[inside], values[inside], minlength=n_bands)

    per_pair = []  # (pairs, forecast / reference, E / K, bands)
    with torch.no_grad():
        for p in pairs:
            out = model(p.graph.with_neighbors(model.config.cutoff))
            start = p.graph.positions.double()
            states = ((out["displacements"], out["velocities"]), (p.displacements, p.velocities))
            sums = np.zeros((2, 2, n_bands))
            for s, (moved, v) in enumerate(states):
                x = (start + moved.double()).reshape(1, n, 3)
                potential, kinetic = mode_energies(x, v.double().reshape(1, n, 3), modes)
                sums[s, 0] = band_sums((potential + kinetic)[0].numpy())
                sums[s, 1] = band_sums(kinetic[0].numpy())
            per_pair.append(sums)
    per_pair = np.asarray(per_pair)
    rng = np.random.default_rng(0)
    resampled = [per_pair[rng.integers(0, len(per_pair), len(per_pair))].sum(0) for _ in range(200)]
    spread = np.std([r[0] / r[1] for r in resampled], axis=0)  # (E / K, bands)
    total = per_pair.sum(0)
    print(f"{len(pairs)} pairs: energy kept per stride in each band (forecast / reference)")
    counts = np.bincount(band[inside], minlength=n_bands)
    bands = zip(edges[:-1], edges[1:], strict=True)
    print(f"{'THz':>6} " + " ".join(f"{lo:g}-{hi:g}".rjust(8) for lo, hi in bands) + "      all")
    print(f"{'modes':>6} " + " ".join(f"{c:8d}" for c in counts))
    for k, name in enumerate(("E", "K")):
        kept = total[0, k] / total[1, k]
        overall = total[0, k].sum() / total[1, k].sum()
        print(f"{name:>6} " + " ".join(f"{x:8.5f}" for x in kept) + f" {overall:8.5f}")
    for k, name in enumerate(("E", "K")):
        print(f"{'±' + name:>6} " + " ".join(f"{x:8.5f}" for x in spread[k]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="forecaster: energy kept per band on --pairs / --states")
    parser.add_argument("--pairs", nargs="+", default=[], help="reference HDF5 files")
    parser.add_argument("--states", nargs="+", default=[],
                        help="runs (rollouts) whose states start exact strides")  # fmt: skip
    parser.add_argument("--every", type=int, default=40, help="a pair every n frames")
    parser.add_argument("--runs", nargs="+", default=[], help="trajectories to score")
    parser.add_argument("--references", nargs="+", default=[], help="reference trajectories")
    parser.add_argument("--start", type=int, default=0, help="frames to skip in each run")
    parser.add_argument("--lattice", help="structure file of the crystal's sites")
    parser.add_argument("--calculator", help="reference calculator (default asap-emt or emt)")
    parser.add_argument("--bands", type=float, nargs="+", default=[0, 2, 3, 4, 5, 6, 7, 8])
    args = parser.parse_args()
    if not (args.model and (args.pairs or args.states)) and not args.runs:
        parser.error("give --model and --pairs or --states, or --runs (and --references)")
    lattice = read(args.lattice) if args.lattice else default_system("cu-emt-forecaster")
    name = args.calculator
    if name is None:
        try:
            import asap3  # noqa: F401

            name = "asap-emt"
        except ImportError:
            name = "emt"
    modes = harmonic_modes(lattice, make_calculator(name))
    edges = np.asarray(args.bands, dtype=float)
    if args.model and (args.pairs or args.states):
        model = load_model(args.model)
        model.eval()
        pairs = []
        if args.pairs:
            pairs += build_pairs(args.pairs, model.timestep, args.every, False, None, model.dtype)
        for run in args.states:
            states = load_trajectory(run)[args.start :: args.every]
            pairs += pairs_from_states(states, name, model.config.md_timestep,
                                       model.config.stride, False, dtype=model.dtype)  # fmt: skip
        if not pairs:
            parser.error("no pairs: --start / --every leave no frame of the runs")
        energy_kept(model, pairs, modes, edges)
    for label, files in (("runs", args.runs), ("references", args.references)):
        if not files:
            continue
        pooled = band_temperatures(
            [analysis.load(f, start=args.start) for f in files], modes, edges
        )
        kinetic = " ".join(f"{t:6.1f}" for t in pooled["kinetic"])
        potential = " ".join(f"{t:6.1f}" for t in pooled["potential"])
        print(f"{label} ({len(files)}): T by band, kinetic {kinetic}, potential {potential} K")


if __name__ == "__main__":
    main()
