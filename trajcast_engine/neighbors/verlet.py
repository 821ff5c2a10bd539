"""Verlet-skin reuse of the cell list.

The list is built with ``cutoff + skin`` and reused while the largest two atomic
displacements since the build sum to at most ``skin``, with the cell, pbc and atom
layout unchanged. This criterion is exact: for any pair,
``|d_then| <= |d_now| + |Δr_i| + |Δr_j| <= |d_now| + skin``, so every pair now closer
than ``cutoff`` was closer than ``cutoff + skin`` at the build and is in the list. It is
never looser than the textbook rule "rebuild once an atom moved more than skin / 2"
(Allen & Tildesley, *Computer Simulation of Liquids*, 2nd ed., §5.3.1) and reuses the
list longer when only a few atoms move far.

Displacements are taken from raw positions: wrapping an atom back into the cell moves
it by a lattice vector and so forces a rebuild, as it must, since its shifts change.
"""

from __future__ import annotations

import numpy as np

from trajcast_engine.neighbors.cell_list import build_pairs, pair_distances
from trajcast_engine.neighbors.neighbor_list import Pairs, as_batch_arrays
from trajcast_engine.validation import check_cutoff


class VerletNeighborList:
    """A neighbour list with a skin, rebuilt only when some pair might have been missed.

    ``update`` returns the pairs closer than ``cutoff + skin`` (a superset of the pairs
    within ``cutoff``); ``within_cutoff`` filters them to the exact cutoff. ``n_builds``
    counts rebuilds and ``rebuilt`` says whether the last update rebuilt.
    """

    def __init__(self, cutoff: float, skin: float = 1.0) -> None:
        self.cutoff = check_cutoff(cutoff)
        skin = float(skin)
        if not np.isfinite(skin) or skin < 0.0:
            raise ValueError(f"skin must be a finite length >= 0 Å, got {skin}")
        self.skin = skin
        self.n_builds = 0
        self.rebuilt = False
        self._reference: np.ndarray | None = None
        self._cells: np.ndarray | None = None
        self._pbc: np.ndarray | None = None
        self._ptr: np.ndarray | None = None
        self._pairs: Pairs | None = None

    def max_displacement_sum(self, positions: np.ndarray) -> float:
        """Sum of the two largest displacements (Å) since the last build."""
        if self._reference is None or self._reference.shape != positions.shape:
            return np.inf
        moved = np.sqrt(np.sum((positions - self._reference) ** 2, axis=1))
        if moved.size == 0:
            return 0.0
        if moved.size == 1:
            return float(moved[0])
        top = np.partition(moved, moved.size - 2)[-2:]
        return float(top[0] + top[1])

    def needs_rebuild(
        self, positions: np.ndarray, cells: np.ndarray, pbc: np.ndarray, ptr: np.ndarray
    ) -> bool:
        """Whether the stored list may miss a pair within the cutoff."""
        if self._pairs is None:
            return True
        same_layout = (
            np.array_equal(ptr, self._ptr)
            and np.array_equal(pbc, self._pbc)
            and np.array_equal(cells, self._cells)
        )
        return not same_layout or self.max_displacement_sum(positions) > self.skin

    def update(
        self,
        positions: np.ndarray,
        cell: np.ndarray | None,
        pbc: np.ndarray | bool | None,
        ptr: np.ndarray | None = None,
        rebuild: bool | None = None,
    ) -> Pairs:
        """Pairs closer than ``cutoff + skin``, rebuilding the list only when needed
        (``rebuild``: a caller's own :meth:`needs_rebuild` answer, not computed twice)."""
        positions, cells, pbc, ptr = as_batch_arrays(positions, cell, pbc, ptr)
        if rebuild is None:
            rebuild = self.needs_rebuild(positions, cells, pbc, ptr)
        self.rebuilt = bool(rebuild) or self._pairs is None
        if self.rebuilt:
            reach = self.cutoff + self.skin
            self._pairs = Pairs(*build_pairs(positions, cells, pbc, ptr, reach))
            self._reference = positions.copy()
            self._cells, self._pbc, self._ptr = cells.copy(), pbc.copy(), ptr.copy()
            self.n_builds += 1
        assert self._pairs is not None
        return self._pairs

    def within_cutoff(self, positions: np.ndarray) -> Pairs:
        """The stored pairs filtered to ``|d| < cutoff`` at ``positions``."""
        if self._pairs is None or self._cells is None or self._ptr is None:
            raise RuntimeError("call update() before within_cutoff()")
        p = self._pairs
        d = pair_distances(positions, self._cells, self._ptr, p.i, p.j, p.shift)
        keep = d < self.cutoff
        return Pairs(p.i[keep], p.j[keep], p.shift[keep])
