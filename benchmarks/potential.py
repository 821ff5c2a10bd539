"""Potential speed: milliseconds per energy+forces call, trajcast-engine against MACE.

Both models are built at a matched size (same cutoff, spherical-harmonic/feature lmax,
channels per irrep, number of interaction layers, 8 Bessel functions, envelope p = 6;
MACE with its default correlation order 3) with untrained weights, and called through
their ASE calculators on fcc Cu from 64 to 4,000 atoms; every call sees slightly moved
atoms so nothing is cached. mace-torch pins e3nn 0.4.4, so it runs from its own virtual
environment, in a subprocess of the same benchmark run:

    python -m venv .venv-mace && .venv-mace/bin/pip install torch==2.13.0 mace-torch
    python benchmarks/potential.py --mace-python .venv-mace/bin/python
    python benchmarks/potential.py --device cuda   # where a GPU is present
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SIZES = {64: (2, 2, 4), 256: (4, 4, 4), 1000: (5, 5, 10), 4000: (10, 10, 10)}

TIMER = """
import statistics, time
import numpy as np
from ase.build import bulk

def time_calls(calc, reps, repeats, rng):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=0)
    atoms.calc = calc
    atoms.get_forces()  # warm-up
    times = []
    for _ in range(repeats):
        atoms.positions += rng.normal(0, 1e-3, atoms.positions.shape)
        start = time.perf_counter()
        atoms.get_potential_energy(); atoms.get_forces()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
"""

MACE_WORKER = (
    TIMER
    + """
import json, os, sys
# MACECalculator round-trips the model object through torch.save/torch.load; torch's
# weights-only default refuses that (it is our own freshly built model, in its own venv)
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
import torch
from e3nn import o3
from mace import modules
from mace.calculators import MACECalculator

args = json.loads(sys.argv[1])
torch.set_default_dtype(getattr(torch, args["dtype"]))
c, l = args["channels"], args["lmax"]
irreps = "+".join(f"{c}x{k}{'e' if k % 2 == 0 else 'o'}" for k in range(l + 1))
model = modules.MACE(
    r_max=args["cutoff"], num_bessel=8, num_polynomial_cutoff=6, max_ell=l,
    interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
    num_interactions=args["layers"], num_elements=1, hidden_irreps=o3.Irreps(irreps),
    MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(1), avg_num_neighbors=40.0,
    atomic_numbers=[29], correlation=3, gate=torch.nn.functional.silu,
    radial_MLP=[args["radial_hidden"]] * 3,
)
calc = MACECalculator(models=model, device=args["device"], default_dtype=args["dtype"])
rng = np.random.default_rng(0)
for n, reps in args["sizes"]:
    print(json.dumps({"atoms": n, "ms": time_calls(calc, reps, args["repeats"], rng),
                      "parameters": sum(p.numel() for p in model.parameters())}), flush=True)
"""
)


def ours(args) -> list[dict]:
    import numpy as np
    import torch

    from trajcast_engine.calculator import TrajcastCalculator
    from trajcast_engine.nn.potential import EquivariantPotential, PotentialConfig

    namespace: dict = {}
    exec(TIMER, namespace)
    torch.manual_seed(0)
    model = EquivariantPotential(
        PotentialConfig(
            species=[29],
            cutoff=args.cutoff,
            lmax=args.lmax,
            channels=args.channels,
            num_layers=args.layers,
            num_basis=8,
            radial_hidden=args.radial_hidden,
            radial_layers=3,
            avg_num_neighbors=40.0,
            dtype=args.dtype,
        )
    )
    calc = TrajcastCalculator(model, device=args.device)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        ms = namespace["time_calls"](calc, SIZES[n], args.repeats, rng)
        rows.append(
            {"atoms": n, "ms": ms, "parameters": sum(p.numel() for p in model.parameters())}
        )
        print(f"  trajcast-engine {n:5d} atoms done", file=sys.stderr)
    return rows


def mace(args) -> list[dict] | str:
    python = args.mace_python
    if python is None or not Path(python).exists():
        return "not run: pass --mace-python (a venv with mace-torch; see the docstring)"
    payload = {
        "cutoff": args.cutoff,
        "lmax": args.lmax,
        "channels": args.channels,
        "layers": args.layers,
        "radial_hidden": args.radial_hidden,
        "dtype": args.dtype,
        "device": args.device,
        "repeats": args.repeats,
        "sizes": [[n, SIZES[n]] for n in args.sizes],
    }
    result = subprocess.run(
        [python, "-c", MACE_WORKER, json.dumps(payload)], capture_output=True, text=True
    )
    if result.returncode != 0:
        return "failed: " + result.stderr.strip().splitlines()[-1]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--lmax", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--radial-hidden", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mace-python", default=".venv-mace/bin/python")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/potential.json"))
    args = parser.parse_args()

    start = time.perf_counter()
    mine = ours(args)
    theirs = mace(args)
    print(
        f"\nEnergy + forces per call, fcc Cu, cutoff {args.cutoff} Å, lmax {args.lmax}, "
        f"{args.channels} channels, {args.layers} layers, {args.dtype}, {args.device}\n"
    )
    header = f"{'atoms':>6s} {'trajcast-engine ms':>19s} {'MACE ms':>9s} {'ours / MACE':>12s}"
    print(header)
    print("-" * len(header))
    by_size = {r["atoms"]: r for r in theirs} if isinstance(theirs, list) else {}
    for row in mine:
        other = by_size.get(row["atoms"])
        ratio = f"{row['ms'] / other['ms']:12.2f}" if other else f"{'-':>12s}"
        mace_ms = f"{other['ms']:9.1f}" if other else f"{'-':>9s}"
        print(f"{row['atoms']:6d} {row['ms']:19.1f} {mace_ms} {ratio}")
    if isinstance(theirs, str):
        print(f"\nMACE {theirs}")
    else:
        print(
            f"\nparameters: trajcast-engine {mine[0]['parameters']}, MACE {theirs[0]['parameters']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "settings": vars(args) | {"json": str(args.json)},
                "trajcast_engine": mine,
                "mace": theirs,
            },
            indent=1,
        )
    )
    print(f"written {args.json} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
