"""The ``trajcast`` command line.

Sub-commands so far:

- ``trajcast neighbors [STRUCTURE]``: build the neighbour list of a structure (any file
  ASE reads, or a built-in fcc Cu crystal) and report pair counts, neighbour statistics
  and build time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from trajcast_engine import __version__


def _load_structure(path: str | None, supercell: Sequence[int]):
    from ase.build import bulk
    from ase.io import read

    if path is None:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        label = "built-in fcc Cu (a = 3.61 Å)"
    else:
        try:
            atoms = read(path)
        except FileNotFoundError:
            raise SystemExit(f"trajcast: error: structure file not found: {path}") from None
        except Exception as err:  # ASE raises many types for unreadable files
            raise SystemExit(f"trajcast: error: could not read {path}: {err}") from None
        label = path
    if any(n < 1 for n in supercell):
        raise SystemExit(f"trajcast: error: --supercell needs positive integers, got {supercell}")
    return atoms.repeat(tuple(supercell)), label


def _neighbors(args: argparse.Namespace) -> int:
    from trajcast_engine.neighbors import neighbor_list_atoms, pair_distances
    from trajcast_engine.neighbors.neighbor_list import atoms_batch_arrays

    atoms, label = _load_structure(args.structure, args.supercell)
    try:
        neighbor_list_atoms(atoms, args.cutoff)  # first call compiles (cached on disk)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            pairs = neighbor_list_atoms(atoms, args.cutoff)
            times.append(time.perf_counter() - start)
    except ValueError as err:
        raise SystemExit(f"trajcast: error: {err}") from None
    per_atom = np.bincount(pairs.i, minlength=len(atoms))
    positions, cells, _, ptr = atoms_batch_arrays(atoms)
    dist = pair_distances(positions, cells, ptr, pairs.i, pairs.j, pairs.shift)
    print(f"structure      {label}: {len(atoms)} atoms, {atoms.get_chemical_formula()}")
    print(f"pbc            {atoms.pbc.tolist()}")
    print(f"cutoff         {args.cutoff:g} Å")
    print(f"pairs          {len(pairs)} (both directions)")
    print(f"neighbours     mean {per_atom.mean():.2f}, min {per_atom.min()}, max {per_atom.max()}")
    if len(dist):
        print(f"shortest pair  {dist.min():.4f} Å")
    print(f"build time     {1e3 * min(times):.2f} ms (best of {args.repeat})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trajcast`` command."""
    parser = argparse.ArgumentParser(
        prog="trajcast",
        description="Force-free large-timestep molecular dynamics with equivariant networks.",
    )
    parser.add_argument("--version", action="version", version=f"trajcast-engine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    nb = commands.add_parser(
        "neighbors",
        help="neighbour-list statistics and build time for a structure",
        description="Build the Numba cell list of a structure and report pairs and timing.",
    )
    nb.add_argument("structure", nargs="?", help="any file ASE reads (default: built-in fcc Cu)")
    nb.add_argument("--cutoff", type=float, default=5.0, help="cutoff in Å (default 5)")
    nb.add_argument(
        "--supercell",
        type=int,
        nargs=3,
        default=(1, 1, 1),
        metavar=("NA", "NB", "NC"),
        help="repeat the structure NA x NB x NC times",
    )
    nb.add_argument("--repeat", type=int, default=5, help="timed builds (default 5)")
    nb.set_defaults(handler=_neighbors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trajcast`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
