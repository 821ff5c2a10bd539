"""Forecaster rollout throughput on fcc Cu against classic MD with the companion potential.

For each size (atoms), in a fresh subprocess (so that peak memory is per size):

- forecaster: one step = neighbour list (Verlet skin 1 Å) + model + CSVR + checks +
  HDF5 writer (every step), timed per phase; simulated ns/day at the model's stride and
  atom-steps per second;
- the same with the neighbour list rebuilt every step (skin 0), to show what the skin
  saves;
- classic MD: velocity Verlet with the companion potential (``cu-emt-potential``) through
  its ASE calculator at the reference step (1 fs), up to ``--classic-max`` atoms.

The forecaster is the shipped ``cu-emt-forecaster`` when its file exists, otherwise an
untrained model of the same configuration (timing does not depend on the weights; the
table says which). Prints a table and writes ``benchmarks/results/rollout.json``.

    python benchmarks/rollout.py                          # 256 .. 32,000 atoms on CPU
    python benchmarks/rollout.py --sizes 4000 108000 --device cuda
    python benchmarks/rollout.py --model paper --sizes 4374 --device cuda   # the H100 target
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE_STEP_FS = 1.0


def crystal(n_atoms: int):
    from ase.build import bulk

    reps = max(1, round((n_atoms / 4) ** (1 / 3)))
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)


def forecaster(args: argparse.Namespace):
    import torch

    from integrators.rollout import load_forecaster
    from trajcast_engine.models import shipped_model_available

    chunk = "auto" if args.edge_chunk is None else args.edge_chunk
    how = dict(tensor_product=args.tensor_product, edge_chunk=chunk)
    if args.model == "shipped" and shipped_model_available("cu-emt-forecaster"):
        model = load_forecaster("cu-emt-forecaster", args.device, **how)
        return model, "shipped cu-emt-forecaster"
    from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster

    torch.manual_seed(0)
    if args.model == "paper":  # the paper's size (ForecasterConfig's defaults), 30 fs
        config = ForecasterConfig(species=[29], cutoff=5.0, dtype="float32", stride=30,
                                  avg_num_neighbors=42.0)  # fmt: skip
        label = "untrained, paper size (lmax 2, 64 ch x2 parities, 4 layers)"
    else:
        config = ForecasterConfig(
            species=[29], cutoff=4.0, lmax=1, channels=16, num_layers=3, radial_hidden=32,
            radial_layers=2, both_parities=False, dtype="float32", md_timestep=1.0, stride=20,
            displacement_scale=1e-3, velocity_scale=3e-3, avg_num_neighbors=18.0,
        )  # fmt: skip
        label = "untrained, shipped config"
    return load_forecaster(TrajCastForecaster(config), args.device, **how), label


def time_forecaster(args: argparse.Namespace, skin: float) -> dict:
    import numpy as np

    from integrators import CSVR, ForecastRollout
    from trajcast_engine.data.reference_md import thermalize
    from trajcast_engine.graph import from_atoms
    from trajcast_engine.nn.execution import execution_summary
    from trajcast_engine.trajectory import TrajectoryWriter

    atoms = crystal(args.one)
    thermalize(atoms, 300.0, np.random.default_rng(0))
    model, label = forecaster(args)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = args.steps
    rollout = ForecastRollout(model, from_atoms(atoms), thermostat=CSVR(300.0, 10 * model.timestep),
                              seed=0, skin=skin, neighbor_backend=args.neighbors)  # fmt: skip
    rollout.run(3)  # warm-up: Numba compile, allocator
    with tempfile.TemporaryDirectory() as tmp:
        writer = TrajectoryWriter(Path(tmp) / "t.h5", atoms)
        rollout.profile()
        writer_seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            rollout.step()
            t0 = time.perf_counter()
            g = rollout.graph
            writer.write(g.positions.detach().cpu().double().numpy(),
                         velocities=g.velocities.detach().cpu().double().numpy(),
                         time_fs=rollout.time_fs, step=rollout.step_count)  # fmt: skip
            writer_seconds += time.perf_counter() - t0
        writer.close()
        total = time.perf_counter() - start
    phases = {k: v / steps * 1e3 for k, v in (rollout.timings or {}).items()}
    phases["writer"] = writer_seconds / steps * 1e3
    per_step = total / steps
    return {
        "atoms": len(atoms),
        "model": label,
        "execution": execution_summary(model),
        "baseline_rss_mb": baseline_mb,  # interpreter, torch and model, before the system
        "stride_fs": model.timestep,
        "ms_per_step": per_step * 1e3,
        "ns_per_day": model.timestep * 1e-6 / per_step * 86400,
        "atom_steps_per_s": len(atoms) / per_step,
        "phases_ms": phases,
        "neighbour_builds": rollout.neighbors.n_builds,
        "neighbour_backend": rollout.neighbor_backend,
    }


def time_classic(n_atoms: int, device: str, steps: int) -> dict:
    import numpy as np
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from trajcast_engine.calculator import TrajcastCalculator
    from trajcast_engine.data.reference_md import thermalize
    from trajcast_engine.models import shipped_model_path

    atoms = crystal(n_atoms)
    thermalize(atoms, 300.0, np.random.default_rng(0))
    atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"), device=device)
    dyn = VelocityVerlet(atoms, REFERENCE_STEP_FS * units.fs)
    dyn.run(2)
    start = time.perf_counter()
    dyn.run(steps)
    per_step = (time.perf_counter() - start) / steps
    return {
        "ms_per_step": per_step * 1e3,
        "ns_per_day": REFERENCE_STEP_FS * 1e-6 / per_step * 86400,
        "atom_steps_per_s": len(atoms) / per_step,
    }


def one(args: argparse.Namespace) -> None:
    """Measure one size in this process; print JSON."""
    import torch

    torch.set_grad_enabled(True)
    row = time_forecaster(args, 1.0)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if not args.skip_skin0:
        row["rebuild_every_step"] = time_forecaster(args, 0.0)
    if row["atoms"] <= args.classic_max:
        row["classic"] = time_classic(args.one, args.device, max(3, args.steps // 4))
    print(json.dumps(row))


def row_kb_per_atom(row: dict) -> float:
    """Peak memory above the interpreter/torch/model baseline, per atom (kB): RSS on the
    CPU, allocated memory on a GPU."""
    if "peak_gpu_mb" in row:
        return row["peak_gpu_mb"] * 1024 / row["atoms"]
    return (row["peak_rss_mb"] - row["baseline_rss_mb"]) * 1024 / row["atoms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 864, 2048, 4000, 13500, 32000]
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--classic-max", type=int, default=4000)
    parser.add_argument("--neighbors", choices=("auto", "numba", "torch"), default="auto",
                        help="neighbour-list backend of the forecaster rows")  # fmt: skip
    parser.add_argument(
        "--model",
        choices=("shipped", "paper"),
        default="shipped",
        help="shipped cu-emt-forecaster, or an untrained paper-size one",
    )
    parser.add_argument("--tensor-product", help="channelwise (default), e3nn, cuequivariance")
    parser.add_argument(
        "--edge-chunk",
        type=int,
        help="messages this many edges at a time (default: the engine's; 0: all)",
    )
    parser.add_argument(
        "--skip-skin0",
        action="store_true",
        help="leave out the rebuild-every-step rows (large sizes)",
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "rollout.json")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    rows = []
    header = (
        f"{'atoms':>7} {'fc ms/step':>10} {'fc ns/day':>10} {'atom-steps/s':>13} "
        f"{'skin0 ns/day':>12} {'MD ns/day':>10} {'speed-up':>8} {'kB/atom':>8}  breakdown (ms)"
    )
    print(header)
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n), "--device", args.device,
                   "--steps", str(args.steps), "--classic-max", str(args.classic_max),
                   "--neighbors", args.neighbors, "--model", args.model]  # fmt: skip
        for flag, value in (("--tensor-product", args.tensor_product),
                            ("--edge-chunk", args.edge_chunk)):  # fmt: skip
            if value is not None:
                command += [flag, str(value)]
        if args.skip_skin0:
            command.append("--skip-skin0")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = "out of memory" if done.returncode in (-9, 137) else done.stderr.strip()[-300:]
            print(f"{n:>7} stopped: {reason}")
            rows.append({"atoms": n, "stopped": reason})
            break
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        classic = row.get("classic")
        speed_up = row["ns_per_day"] / classic["ns_per_day"] if classic else float("nan")
        breakdown = ", ".join(f"{k} {v:.2f}" for k, v in row["phases_ms"].items())
        print(
            f"{row['atoms']:>7} {row['ms_per_step']:>10.2f} {row['ns_per_day']:>10.2f} "
            f"{row['atom_steps_per_s']:>13.3g} "
            f"{row.get('rebuild_every_step', {}).get('ns_per_day', float('nan')):>12.2f} "
            f"{classic['ns_per_day'] if classic else float('nan'):>10.3f} {speed_up:>8.1f} "
            f"{row_kb_per_atom(row):>8.1f}  {breakdown}",
            flush=True,
        )
    out = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "device": args.device}  # fmt: skip
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(f"model: {rows[0].get('model', '?')}; {rows[0].get('execution', '')}; wrote {out}")


if __name__ == "__main__":
    main()
