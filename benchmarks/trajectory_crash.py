"""SIGKILL a trajectory writer at random moments, in the worst case, and check each file.

A writer flushes blocks of 1 to 12 frames (chunks of 7 rows, so blocks start and end
inside chunks) with no work between frames, so that it spends most of its time inside
HDF5 calls, and is killed with SIGKILL at a random moment, many times. Each file is then
loaded with mdtraj and every frame's content checked; the file is then resumed (one more
frame appended) and loaded again. A real run spends nearly all its time computing
between flushes; this script aims at the flushes. Files the kill left in the middle of a
flush are counted (their length differs from the end-of-file address in the superblock).

    python benchmarks/trajectory_crash.py --kills 100
"""

from __future__ import annotations

import argparse
import shutil
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
rng = np.random.default_rng(int(sys.argv[2]))
print("ready", flush=True)
for k in range(1_000_000):
    writer.write(base + k * 1e-3, time_fs=float(k), step=k)
    if rng.random() < 0.2:
        writer.flush()
"""


def one_kill(path: Path, delay: float, seed: int) -> tuple[str, bool]:
    """(outcome, whether the kill landed inside a flush); a failure keeps a copy of the
    killed file next to ``path`` (``*.killed``) and prints why."""
    import mdtraj as md

    from trajcast_engine.trajectory import TrajectoryWriter
    from trajcast_engine.trajectory.repair import interrupted

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(seed)], stdout=subprocess.PIPE, text=True
    )
    proc.stdout.readline()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not path.exists():
        return "no file yet", False
    mid_flush = interrupted(path)
    shutil.copyfile(path, path.with_suffix(".killed"))
    try:
        traj = md.load(path)
    except Exception as err:
        print(f"{path}: mdtraj cannot load it: {err}")
        return "unreadable", mid_flush
    if not intact(traj):
        return "torn", mid_flush
    try:
        with TrajectoryWriter(path, atoms(), mode="a") as writer:
            n = writer.n_frames
            writer.write(atoms().positions + n * 1e-3, time_fs=float(n), step=n)
        resumed = md.load(path)
        if resumed.n_frames != n + 1 or not intact(resumed):
            raise ValueError(f"{resumed.n_frames} frames after resuming at {n}, or wrong ones")
    except Exception as err:
        print(f"{path}: resume failed: {type(err).__name__}: {err}")
        return "resume failed", mid_flush
    path.with_suffix(".killed").unlink()
    return "intact, resumed", mid_flush


def atoms():
    from ase.build import bulk

    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)


def intact(traj) -> bool:
    """Every frame the file shows is the frame that was written."""
    expected = (atoms().positions[None] + 1e-3 * np.arange(traj.n_frames)[:, None, None]) / 10
    return np.allclose(traj.xyz, expected, atol=2e-6) and np.allclose(
        traj.time, 1e-3 * np.arange(traj.n_frames), atol=1e-6
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="folder to keep the files in (failures as *.killed)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    outcomes = ("intact, resumed", "torn", "unreadable", "resume failed", "no file yet")
    counts = dict.fromkeys(outcomes, 0)
    inside = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(args.kills):
            delay = float(rng.uniform(0.05, 0.6))
            outcome, mid_flush = one_kill(folder / f"k{k}.h5", delay, args.seed + k)
            counts[outcome] += 1
            inside += mid_flush
    print(f"\n{args.kills} SIGKILLs of a writer flushing blocks of 1-12 frames without pause")
    print(f"{inside} kills landed inside a flush (file longer than its end-of-file address)\n")
    for outcome, n in counts.items():
        print(f"{outcome:16s} {n:5d}  ({100 * n / args.kills:.1f}%)")


if __name__ == "__main__":
    main()
