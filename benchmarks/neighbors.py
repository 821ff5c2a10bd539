"""Neighbour-list build time: trajcast-engine against vesin, matscipy and ASE.

Builds the full list with shifts (``ijS``) at a 5 Å cutoff for fcc Cu and for a random
liquid-like box of the same density at about 1k, 10k and 100k atoms, on one core and on
all cores. For each thread setting a worker process pinned to that many cores times every
engine side by side; the table gives the median build time, the ratio to vesin, and
whether the pair counts equal ours.

    python benchmarks/neighbors.py                 # full table (a few minutes)
    python benchmarks/neighbors.py --sizes 1000 10000 --skip-ase
    python benchmarks/neighbors.py --json out.json

Peers come with the ``[bench]`` extra (``pip install -e ".[bench]"``); a missing peer is
reported as such, not silently dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CU_LATTICE = 3.61  # Å, fcc Cu
CU_DENSITY = 4 / CU_LATTICE**3  # atoms per Å^3


def fcc_copper(n_target: int):
    from ase.build import bulk

    reps = max(1, round((n_target / 4) ** (1 / 3)))
    return bulk("Cu", "fcc", a=CU_LATTICE, cubic=True).repeat(reps)


def random_liquid(n_target: int, seed: int = 0):
    """Uniform random positions at Cu density: no lattice order, no overlap control."""
    from ase import Atoms

    length = (n_target / CU_DENSITY) ** (1 / 3)
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, length, (n_target, 3))
    return Atoms(f"Cu{n_target}", positions=positions, cell=[length] * 3, pbc=True)


def engines(threads: int, skip_ase: bool):
    """name -> (callable(atoms, cutoff) -> number of pairs) or an error string."""
    out = {}

    import numba

    from trajcast_engine.neighbors import neighbor_list_atoms

    numba.set_num_threads(threads)
    out["trajcast-engine"] = lambda atoms, rc: len(neighbor_list_atoms(atoms, rc))

    try:
        import vesin

        def run_vesin(atoms, rc):
            nl = vesin.NeighborList(cutoff=rc, full_list=True, n_threads=threads)
            i, j, s = nl.compute(atoms.positions, atoms.cell.array, atoms.pbc, "ijS")
            return len(i)

        out["vesin"] = run_vesin
    except ImportError:
        out["vesin"] = "not installed (pip install vesin)"

    try:
        from matscipy.neighbours import neighbour_list

        out["matscipy"] = lambda atoms, rc: len(neighbour_list("ijS", atoms, rc)[0])
    except ImportError:
        out["matscipy"] = "not installed (pip install matscipy)"

    if skip_ase:
        out["ase"] = "skipped (--skip-ase)"
    else:
        from ase.neighborlist import neighbor_list

        out["ase"] = lambda atoms, rc: len(neighbor_list("ijS", atoms, rc)[0])
    return out


def time_build(fn, atoms, cutoff: float, budget_s: float) -> tuple[float, int, int]:
    """Median seconds per build after one warm-up call, repeated within ``budget_s``."""
    n_pairs = fn(atoms, cutoff)  # warm-up (JIT, caches, allocations)
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget_s and len(times) < 30):
        start = time.perf_counter()
        fn(atoms, cutoff)
        times.append(time.perf_counter() - start)
        if times[-1] > budget_s:  # one slow build is enough
            break
    return statistics.median(times), n_pairs, len(times)


def worker(args: argparse.Namespace) -> None:
    """Runs pinned to ``args.threads`` cores; prints one JSON list of rows."""
    rows = []
    table = engines(args.threads, args.skip_ase)
    for system in ("fcc Cu", "random liquid"):
        for size in args.sizes:
            atoms = fcc_copper(size) if system == "fcc Cu" else random_liquid(size)
            for name, fn in table.items():
                row = {"system": system, "atoms": len(atoms), "threads": args.threads}
                row["engine"] = name
                if isinstance(fn, str):
                    row["error"] = fn
                else:
                    seconds, pairs, runs = time_build(fn, atoms, args.cutoff, args.budget)
                    row.update(ms=1e3 * seconds, pairs=pairs, runs=runs)
                rows.append(row)
                print(f"  {system:13s} {len(atoms):7d} {name:16s} done", file=sys.stderr)
    print(json.dumps(rows))


def run_pinned(threads: int, args: argparse.Namespace) -> list[dict]:
    cores = sorted(os.sched_getaffinity(0))[:threads]
    command = [sys.executable, __file__, "--worker", str(threads)]
    command += ["--cutoff", str(args.cutoff), "--budget", str(args.budget), "--sizes"]
    command += [str(s) for s in args.sizes] + (["--skip-ase"] if args.skip_ase else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    result = subprocess.run(
        command,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    header = f"{'system':14s} {'atoms':>7s} {'thr':>3s} {'engine':16s} {'ms/build':>10s}"
    header += f" {'x vesin':>8s} {'pairs':>10s} {'pairs = ours':>12s}"
    print(header)
    print("-" * len(header))
    key = lambda r: (r["system"], r["atoms"], r["threads"])  # noqa: E731
    ours = {key(r): r for r in rows if r["engine"] == "trajcast-engine" and "ms" in r}
    vesin = {key(r): r for r in rows if r["engine"] == "vesin" and "ms" in r}
    for r in rows:
        lead = f"{r['system']:14s} {r['atoms']:7d} {r['threads']:3d} {r['engine']:16s}"
        if "error" in r:
            print(f"{lead} {r['error']}")
            continue
        ratio = r["ms"] / vesin[key(r)]["ms"] if key(r) in vesin else float("nan")
        same = "yes" if r["pairs"] == ours[key(r)]["pairs"] else "NO"
        print(f"{lead} {r['ms']:10.2f} {ratio:8.2f} {r['pairs']:10d} {same:>12s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--threads", type=int, nargs="+", default=None)
    parser.add_argument("--skip-ase", action="store_true", help="ASE is 40-80x slower")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/neighbors.json"))
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = args.worker
        worker(args)
        return
    all_cores = len(os.sched_getaffinity(0))
    thread_counts = args.threads or sorted({1, all_cores})
    rows = []
    for threads in thread_counts:
        print(f"timing on {threads} core(s) ...", file=sys.stderr)
        rows += run_pinned(threads, args)
    print(f"\nNeighbour-list build, cutoff {args.cutoff} Å, full list with shifts (ijS)")
    print(f"{platform.processor() or platform.machine()}, {all_cores} cores available\n")
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cutoff": args.cutoff, "cores": all_cores, "python": platform.python_version()}
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
