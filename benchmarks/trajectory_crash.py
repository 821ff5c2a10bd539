"""How often a SIGKILL leaves a trajectory file torn, in the worst case.

A writer flushes every 7 frames with no work between frames, so that it spends most of
its time inside HDF5 calls, and is killed with SIGKILL at a random moment, many times.
Each file is then loaded with mdtraj and every frame's content checked. A real run
spends nearly all its time computing between flushes, where a kill is always safe (the
suite tests that case); this script measures the window left inside HDF5's metadata
flush.

    python benchmarks/trajectory_crash.py --kills 100
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRITER = """
import sys
import numpy as np
from ase.build import bulk
from trajcast_engine.trajectory import TrajectoryWriter
atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)
writer = TrajectoryWriter(sys.argv[1], atoms, flush_frames=7)
base = atoms.positions.copy()
print("ready", flush=True)
for k in range(1_000_000):
    writer.write(base + k * 1e-3, time_fs=float(k), step=k)
"""


def one_kill(path: Path, delay: float) -> str:
    import mdtraj as md

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    proc.stdout.readline()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        traj = md.load(path)
    except Exception:
        return "unreadable"
    if intact(traj):
        return "intact"
    from trajcast_engine.trajectory.repair import repair_trajectory

    repair_trajectory(path)  # what `trajcast repair` does
    return "torn, repaired" if intact(md.load(path)) else "torn, not detected"


def intact(traj) -> bool:
    from ase.build import bulk

    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6).positions
    expected = (base[None] + 1e-3 * np.arange(traj.n_frames)[:, None, None]) / 10
    return traj.n_frames % 7 == 0 and np.allclose(traj.xyz, expected, atol=2e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    counts = {"intact": 0, "torn, repaired": 0, "torn, not detected": 0, "unreadable": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.kills):
            counts[one_kill(Path(tmp) / f"k{k}.h5", float(rng.uniform(0.05, 0.6)))] += 1
    print(f"\n{args.kills} SIGKILLs of a writer flushing every 7 frames without pause\n")
    for outcome, n in counts.items():
        print(f"{outcome:11s} {n:5d}  ({100 * n / args.kills:.1f}%)")


if __name__ == "__main__":
    main()
