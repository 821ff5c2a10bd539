"""Trajectory writing speed: trajcast-engine against mdtraj's HDF5 writer and ASE's Trajectory.

Writes the same frames (default 1,000 frames of 4,000 fcc Cu atoms with velocities) with
each writer in one process and prints frames per second, MB/s of file written and the
file size. A second table gives the writer's share of an MD step when writing every 10
steps, against the step time of ASE's EMT at the same size (measured here) and against
any step time passed with ``--step-ms`` (e.g. a forecaster step).

    python benchmarks/trajectory.py
    python benchmarks/trajectory.py --frames 200 --atoms 864 --step-ms 30
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk


def make_frames(n_frames: int, n_atoms: int):
    reps = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    rng = np.random.default_rng(0)
    sigma = np.sqrt(300 * units.kB / atoms.get_masses())[:, None]
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * sigma)
    positions = atoms.positions[None] + rng.normal(0, 0.05, (n_frames, len(atoms), 3))
    velocities = atoms.get_velocities()[None] * units.fs + rng.normal(0, 1e-4, positions.shape)
    return atoms, positions, velocities


def ours(path, atoms, positions, velocities, **options):
    from trajcast_engine.trajectory import TrajectoryWriter

    with TrajectoryWriter(path, atoms, overwrite=True, **options) as writer:
        for k in range(len(positions)):
            writer.write(
                positions[k],
                time_fs=float(k),
                step=k,
                velocities=velocities[k],
                cell=atoms.cell.array,
            )


def mdtraj_writer(path, atoms, positions, velocities, compression):
    import mdtraj as md

    from trajcast_engine.trajectory.topology import topology_dict

    top = md.Topology()
    chain = top.add_chain()
    for a in topology_dict(atoms)["chains"][0]["residues"]:
        residue = top.add_residue(a["name"], chain)
        for atom in a["atoms"]:
            top.add_atom(atom["name"], md.element.get_by_symbol(atom["element"]), residue)
    lengths = atoms.cell.lengths() / 10
    angles = atoms.cell.angles()
    with md.formats.HDF5TrajectoryFile(str(path), "w", compression=compression) as f:
        f.topology = top
        for k in range(len(positions)):  # one call per frame, as an MD loop would
            f.write(
                positions[k] / 10,
                time=k * 1e-3,
                cell_lengths=lengths,
                cell_angles=angles,
                velocities=velocities[k] * 100,
            )


def ase_trajectory(path, atoms, positions, velocities):
    from ase.io.trajectory import Trajectory

    frame = atoms.copy()
    with Trajectory(str(path), "w") as traj:
        for k in range(len(positions)):
            frame.positions = positions[k]
            frame.set_velocities(velocities[k] / units.fs)
            traj.write(frame)


def emt_step_ms(atoms, steps: int = 3) -> float:
    from ase.calculators.emt import EMT
    from ase.md.verlet import VelocityVerlet

    work = atoms.copy()
    work.calc = EMT()
    dyn = VelocityVerlet(work, 1 * units.fs)
    dyn.run(1)
    start = time.perf_counter()
    dyn.run(steps)
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--atoms", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--step-ms", type=float, default=None, help="another MD step time")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/trajectory.json"))
    args = parser.parse_args()

    atoms, positions, velocities = make_frames(args.frames, args.atoms)
    writers = {
        "trajcast-engine (default)": lambda p: ours(p, atoms, positions, velocities),
        "trajcast-engine (full_precision)": lambda p: ours(
            p, atoms, positions, velocities, full_precision=True
        ),
        "trajcast-engine (gzip)": lambda p: ours(
            p, atoms, positions, velocities, compression="gzip"
        ),
        "mdtraj HDF5 (default zlib)": lambda p: mdtraj_writer(
            p, atoms, positions, velocities, "zlib"
        ),
        "mdtraj HDF5 (uncompressed)": lambda p: mdtraj_writer(
            p, atoms, positions, velocities, None
        ),
        "ase.io.Trajectory": lambda p: ase_trajectory(p, atoms, positions, velocities),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in writers.items():
            best = np.inf
            for rep in range(args.repeats):
                path = Path(tmp) / f"w{len(rows)}_{rep}.{'traj' if 'ase' in name else 'h5'}"
                start = time.perf_counter()
                run(path)
                best = min(best, time.perf_counter() - start)
                size_mb = path.stat().st_size / 1e6
                path.unlink()
            rows.append(
                {
                    "writer": name,
                    "seconds": best,
                    "frames_per_s": args.frames / best,
                    "mb_per_s": size_mb / best,
                    "file_mb": size_mb,
                }
            )

    reference = next(r for r in rows if r["writer"] == "mdtraj HDF5 (uncompressed)")
    print(f"\nWriting {args.frames} frames of {len(atoms)} atoms with velocities\n")
    header = (
        f"{'writer':36s} {'frames/s':>10s} {'MB/s':>8s} {'file MB':>8s} {'x mdtraj (raw)':>15s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        speed = r["frames_per_s"] / reference["frames_per_s"]
        print(
            f"{r['writer']:36s} {r['frames_per_s']:10.1f} {r['mb_per_s']:8.1f} "
            f"{r['file_mb']:8.1f} {speed:15.2f}"
        )

    ms_per_frame = 1e3 * rows[0]["seconds"] / args.frames
    steps = {"ASE EMT step (measured now)": emt_step_ms(atoms)}
    if args.step_ms:
        steps["--step-ms"] = args.step_ms
    print(f"\nWriter share of a step, writing every 10 steps ({ms_per_frame:.3f} ms per frame)\n")
    for label, step_ms in steps.items():
        share = ms_per_frame / (ms_per_frame + 10 * step_ms)
        print(f"{label:32s} {step_ms:10.2f} ms/step   writer share {100 * share:6.2f} %")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"rows": rows, "step_ms": steps, "writer_ms_per_frame": ms_per_frame}, indent=1)
    )
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
