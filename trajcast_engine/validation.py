"""Input checks shared by the neighbour lists, the atomic graph and the models.

Every check raises a :class:`ValueError` whose message names the problem and the atom or
system concerned; nothing is silently clamped or repaired.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

#: Largest atomic number ASE knows (oganesson).
MAX_ATOMIC_NUMBER = len(chemical_symbols) - 1


def _where(atom: int, system: int | None) -> str:
    return f"atom {atom}" if system is None else f"atom {atom} of system {system}"


def species_from_symbols(symbols: Sequence[str | int]) -> np.ndarray:
    """Atomic numbers for a list of element symbols (or atomic numbers).

    Raises ``ValueError`` naming the first unknown symbol and its position.
    """
    out = np.empty(len(symbols), dtype=np.int64)
    for k, s in enumerate(symbols):
        if isinstance(s, (int, np.integer)):
            out[k] = int(s)
        elif isinstance(s, str) and s in atomic_numbers and s != "X":
            out[k] = atomic_numbers[s]
        else:
            raise ValueError(
                f"unknown element symbol {s!r} for atom {k}: use a chemical symbol "
                "such as 'H', 'Cu' or 'Si'"
            )
    check_species(out)
    return out


def check_species(numbers: np.ndarray, system: int | None = None) -> None:
    """Atomic numbers must be real elements (1..118)."""
    numbers = np.asarray(numbers)
    bad = np.flatnonzero((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))
    if bad.size:
        k = int(bad[0])
        n = int(numbers[k])
        name = f" ({chemical_symbols[n]!r}, a dummy atom)" if n == 0 else ""
        raise ValueError(
            f"{_where(k, system)} has atomic number {n}{name}, which is not a chemical "
            f"element (expected 1..{MAX_ATOMIC_NUMBER})"
        )


def check_positions(
    positions: np.ndarray, system: int | None = None, quantity: str = "coordinates"
) -> None:
    """Positions (or another per-atom vector, named by ``quantity``) must be an (N, 3)
    array of finite numbers."""
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"{quantity} must have shape (N, 3), got {positions.shape}")
    if np.isfinite(np.sum(positions)):  # fast path; a NaN or inf anywhere makes the sum so
        return
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"{_where(k, system)} has non-finite {quantity} {positions[k].tolist()} "
            f"({bad.size} atom(s) affected)"
        )


def check_cell(cell: np.ndarray, pbc: np.ndarray, system: int | None = None) -> None:
    """A cell must span every periodic direction.

    Fully periodic: the determinant (the volume) must be positive; a zero volume is a
    degenerate cell and a negative one a left-handed cell, which the engine refuses.
    Partially periodic: the periodic vectors must be finite and linearly independent.
    """
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    where = "" if system is None else f"system {system}: "
    if cell.shape != (3, 3):
        raise ValueError(f"{where}cell must have shape (3, 3), got {cell.shape}")
    if pbc.shape != (3,):
        raise ValueError(f"{where}pbc must have three flags, got shape {pbc.shape}")
    if not np.isfinite(cell).all():
        raise ValueError(f"{where}cell has non-finite entries {cell.tolist()}")
    periodic = cell[pbc]
    if len(periodic) == 0:
        return
    scale = max(float(np.abs(periodic).max()), 1e-300)
    if len(periodic) == 3:
        volume = float(np.linalg.det(cell))
        if volume <= 1e-9 * scale**3:
            kind = "zero" if abs(volume) <= 1e-9 * scale**3 else "negative"
            hint = (
                "two cell vectors are parallel or one is zero"
                if kind == "zero"
                else "the cell vectors are left-handed; swap two of them"
            )
            raise ValueError(f"{where}periodic cell has {kind} volume ({volume:.6g} Å^3): {hint}")
        return
    if len(periodic) == 2:
        size = float(np.linalg.norm(np.cross(periodic[0], periodic[1])))
        what = "area"
    else:
        size = float(np.linalg.norm(periodic[0]))
        what = "length"
    if size <= 1e-9 * scale ** len(periodic):
        raise ValueError(
            f"{where}periodic cell vectors {np.flatnonzero(pbc).tolist()} span zero "
            f"{what}: a periodic direction needs a non-zero cell vector"
        )


def check_cutoff(cutoff: float) -> float:
    """A cutoff must be a finite positive length in Å."""
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise ValueError(f"cutoff must be a number in Å, got {cutoff!r}") from None
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"cutoff must be a finite positive length in Å, got {value}")
    return value
