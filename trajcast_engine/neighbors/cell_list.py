"""Numba linked-cell neighbour list for batches of periodic, partly periodic and open systems.

Method (Allen & Tildesley, *Computer Simulation of Liquids*, 2nd ed., §5.3.2), generalised
to triclinic cells and mixed periodicity:

1. Each system gets a working basis ``B`` (rows): the periodic cell vectors, completed by
   orthonormal vectors along the non-periodic directions. Fractional coordinates are
   ``s = r B^-1``; along periodic directions atoms are wrapped into [0, 1) and the integer
   wrap ``w`` is remembered (``r' = r + w B``).
2. Along direction ``a`` the planes spanned by the two other basis vectors are
   ``d_a = |det B| / |b_b x b_c|`` apart. A pair closer than ``r_c`` differs by at most
   ``r_c / d_a`` in ``s_a``, so with ``n_a`` bins across an extent ``L_a`` the search
   reaches ``ceil(r_c n_a / (L_a d_a))`` bins either side. When a periodic cell is thinner
   than the cutoff this reaches several periodic images, including an atom's own images.
3. Atoms are counting-sorted by bin. For every atom ``i`` (in parallel) the bins around it
   are visited twice, once to count and once to write, so that the output is grouped by
   ``i`` in ascending order without locks.

The result is the full (both-ways) list of pairs ``(i, j, S)`` with ``|d_ij| < r_c`` where
``d_ij = r_j - r_i + S @ cell`` and ``S`` holds integer cell images (zero along
non-periodic directions). Self pairs appear only for periodic images (``S != 0``), as in
``ase.neighborlist.neighbor_list``. Pairs never join atoms of different systems.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Relative margin on bin widths so that rounding never hides a pair at the cutoff.
_MARGIN = 1e-6


@numba.njit(cache=True)
def _working_basis(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Periodic rows of ``cell`` completed by orthonormal rows along open directions."""
    basis = np.zeros((3, 3))
    periodic = np.flatnonzero(pbc)
    open_dirs = np.flatnonzero(~pbc)
    n_periodic = periodic.size
    if n_periodic == 3:
        return cell.copy()
    if n_periodic == 0:
        for d in range(3):
            basis[d, d] = 1.0
        return basis
    if n_periodic == 2:
        a = cell[periodic[0]]
        b = cell[periodic[1]]
        normal = np.cross(a, b)
        basis[periodic[0]] = a
        basis[periodic[1]] = b
        basis[open_dirs[0]] = normal / np.sqrt(np.sum(normal * normal))
        return basis
    a = cell[periodic[0]]
    u = a / np.sqrt(np.sum(a * a))
    helper = np.zeros(3)
    helper[np.argmin(np.abs(u))] = 1.0
    v1 = helper - np.sum(helper * u) * u
    v1 /= np.sqrt(np.sum(v1 * v1))
    v2 = np.cross(u, v1)
    basis[periodic[0]] = a
    basis[open_dirs[0]] = v1
    basis[open_dirs[1]] = v2
    return basis


@numba.njit(cache=True)
def _bin_systems(positions, cells, pbc, ptr, cutoff, max_bins_per_atom):
    """Wrap atoms, choose bins per system and counting-sort atoms by bin.

    Returns wrapped positions, integer wraps, per-atom bin coordinates, the working
    bases, bins and search reach per system, the first global bin of each system, and
    the sort (``order``, ``bin_begin``).
    """
    n_systems = ptr.size - 1
    n_atoms = positions.shape[0]
    wrapped = np.empty((n_atoms, 3))
    wraps = np.zeros((n_atoms, 3), dtype=np.int64)
    bin_coord = np.zeros((n_atoms, 3), dtype=np.int64)
    bases = np.empty((n_systems, 3, 3))
    n_bins = np.ones((n_systems, 3), dtype=np.int64)
    reach = np.zeros((n_systems, 3), dtype=np.int64)
    first_bin = np.zeros(n_systems + 1, dtype=np.int64)
    reach_cutoff = cutoff * (1.0 + _MARGIN)
    frac = np.empty((n_atoms, 3))

    for s in range(n_systems):
        a0 = ptr[s]
        a1 = ptr[s + 1]
        basis = _working_basis(cells[s], pbc[s])
        bases[s] = basis
        inverse = np.linalg.inv(basis)
        volume = abs(np.linalg.det(basis))
        lo = np.zeros(3)
        extent = np.ones(3)
        plane_gap = np.empty(3)
        for d in range(3):
            e = np.cross(basis[(d + 1) % 3], basis[(d + 2) % 3])
            plane_gap[d] = volume / np.sqrt(np.sum(e * e))
        for a in range(a0, a1):
            for d in range(3):
                frac[a, d] = (
                    positions[a, 0] * inverse[0, d]
                    + positions[a, 1] * inverse[1, d]
                    + positions[a, 2] * inverse[2, d]
                )
        for d in range(3):
            if pbc[s, d]:
                for a in range(a0, a1):
                    w = math.floor(frac[a, d])
                    frac[a, d] -= w
                    wraps[a, d] = -w
            elif a1 > a0:
                lo[d] = frac[a0, d]
                hi = frac[a0, d]
                for a in range(a0, a1):
                    lo[d] = min(lo[d], frac[a, d])
                    hi = max(hi, frac[a, d])
                extent[d] = hi - lo[d]
        # bins at least one cutoff wide, capped so sparse open systems stay O(N)
        total = 1.0
        for d in range(3):
            width = extent[d] * plane_gap[d]
            n_bins[s, d] = max(1, int(math.floor(width / reach_cutoff)))
            total *= n_bins[s, d]
        limit = max(8.0, max_bins_per_atom * (a1 - a0))
        if total > limit:
            factor = (total / limit) ** (1.0 / 3.0)
            for d in range(3):
                n_bins[s, d] = max(1, int(math.floor(n_bins[s, d] / factor)))
        for d in range(3):
            if pbc[s, d]:
                reach[s, d] = int(math.ceil(reach_cutoff * n_bins[s, d] / plane_gap[d]))
            elif n_bins[s, d] > 1:
                reach[s, d] = int(
                    math.ceil(reach_cutoff * n_bins[s, d] / (extent[d] * plane_gap[d]))
                )
        first_bin[s + 1] = first_bin[s] + n_bins[s, 0] * n_bins[s, 1] * n_bins[s, 2]
        for a in range(a0, a1):
            for d in range(3):
                wrapped[a, d] = (
                    positions[a, d]
                    + wraps[a, 0] * basis[0, d]
                    + wraps[a, 1] * basis[1, d]
                    + wraps[a, 2] * basis[2, d]
                )
                if extent[d] > 0.0:
                    b = int(math.floor((frac[a, d] - lo[d]) / extent[d] * n_bins[s, d]))
                    bin_coord[a, d] = min(max(b, 0), n_bins[s, d] - 1)

    # counting sort of atoms by global bin
    bin_of_atom = np.empty(n_atoms, dtype=np.int64)
    for s in range(n_systems):
        for a in range(ptr[s], ptr[s + 1]):
            bin_of_atom[a] = (
                first_bin[s]
                + (bin_coord[a, 0] * n_bins[s, 1] + bin_coord[a, 1]) * n_bins[s, 2]
                + bin_coord[a, 2]
            )
    bin_begin = np.zeros(first_bin[n_systems] + 1, dtype=np.int64)
    for a in range(n_atoms):
        bin_begin[bin_of_atom[a] + 1] += 1
    for b in range(first_bin[n_systems]):
        bin_begin[b + 1] += bin_begin[b]
    fill = bin_begin[:-1].copy()
    order = np.empty(n_atoms, dtype=np.int64)
    for a in range(n_atoms):
        order[fill[bin_of_atom[a]]] = a
        fill[bin_of_atom[a]] += 1
    return wrapped, wraps, bin_coord, bases, n_bins, reach, first_bin, order, bin_begin


@numba.njit(parallel=True, cache=True)
def _visit_pairs(
    write,
    wrapped,
    wraps,
    bin_coord,
    system_of_atom,
    pbc,
    bases,
    n_bins,
    reach,
    first_bin,
    order,
    bin_begin,
    cutoff,
    offsets,
    out_i,
    out_j,
    out_shift,
    counts,
):
    """Count (``write=False``) or write (``write=True``) the pairs of every atom."""
    n_atoms = wrapped.shape[0]
    sorted_pos = np.empty((n_atoms, 3))
    for m in range(n_atoms):
        sorted_pos[m] = wrapped[order[m]]
    cutoff2 = cutoff * cutoff
    for k in numba.prange(n_atoms):
        i = order[k]
        s = system_of_atom[i]
        nx, ny, nz = n_bins[s, 0], n_bins[s, 1], n_bins[s, 2]
        xi, yi, zi = wrapped[i, 0], wrapped[i, 1], wrapped[i, 2]
        found = 0
        slot = offsets[i] if write else 0
        for ox in range(-reach[s, 0], reach[s, 0] + 1):
            cx = bin_coord[i, 0] + ox
            sx = 0
            if pbc[s, 0]:
                sx = cx // nx
                cx -= sx * nx
            elif cx < 0 or cx >= nx:
                continue
            for oy in range(-reach[s, 1], reach[s, 1] + 1):
                cy = bin_coord[i, 1] + oy
                sy = 0
                if pbc[s, 1]:
                    sy = cy // ny
                    cy -= sy * ny
                elif cy < 0 or cy >= ny:
                    continue
                for oz in range(-reach[s, 2], reach[s, 2] + 1):
                    cz = bin_coord[i, 2] + oz
                    sz = 0
                    if pbc[s, 2]:
                        sz = cz // nz
                        cz -= sz * nz
                    elif cz < 0 or cz >= nz:
                        continue
                    image = sx != 0 or sy != 0 or sz != 0
                    vx = sx * bases[s, 0, 0] + sy * bases[s, 1, 0] + sz * bases[s, 2, 0] - xi
                    vy = sx * bases[s, 0, 1] + sy * bases[s, 1, 1] + sz * bases[s, 2, 1] - yi
                    vz = sx * bases[s, 0, 2] + sy * bases[s, 1, 2] + sz * bases[s, 2, 2] - zi
                    b = first_bin[s] + (cx * ny + cy) * nz + cz
                    for m in range(bin_begin[b], bin_begin[b + 1]):
                        dx = sorted_pos[m, 0] + vx
                        dy = sorted_pos[m, 1] + vy
                        dz = sorted_pos[m, 2] + vz
                        if dx * dx + dy * dy + dz * dz >= cutoff2:
                            continue
                        j = order[m]
                        if j == i and not image:
                            continue
                        if write:
                            out_i[slot] = i
                            out_j[slot] = j
                            out_shift[slot, 0] = sx + wraps[j, 0] - wraps[i, 0]
                            out_shift[slot, 1] = sy + wraps[j, 1] - wraps[i, 1]
                            out_shift[slot, 2] = sz + wraps[j, 2] - wraps[i, 2]
                            slot += 1
                        found += 1
        if not write:
            counts[i] = found


def build_pairs(
    positions: np.ndarray,
    cells: np.ndarray,
    pbc: np.ndarray,
    ptr: np.ndarray,
    cutoff: float,
    max_bins_per_atom: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full pair list of a batch of systems (no input checks; see ``neighbor_list``).

    ``positions`` (N, 3) float64 with the atoms of system ``s`` in rows
    ``ptr[s]:ptr[s+1]``; ``cells`` (S, 3, 3) with cell vectors as rows; ``pbc`` (S, 3)
    bool. Returns ``i``, ``j`` (E,) int64 sorted by ``i`` and ``shift`` (E, 3) int64.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cells = np.ascontiguousarray(cells, dtype=np.float64)
    pbc = np.ascontiguousarray(pbc, dtype=np.bool_)
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    n_atoms = positions.shape[0]
    system_of_atom = np.repeat(np.arange(ptr.size - 1, dtype=np.int64), np.diff(ptr))
    (wrapped, wraps, bin_coord, bases, n_bins, reach, first_bin, order, bin_begin) = _bin_systems(
        positions, cells, pbc, ptr, float(cutoff), float(max_bins_per_atom)
    )
    counts = np.zeros(n_atoms, dtype=np.int64)
    offsets = np.zeros(n_atoms + 1, dtype=np.int64)
    empty_i = np.empty(0, dtype=np.int64)
    empty_shift = np.empty((0, 3), dtype=np.int64)
    args = (wrapped, wraps, bin_coord, system_of_atom, pbc, bases, n_bins, reach)
    rest = (first_bin, order, bin_begin, float(cutoff))
    _visit_pairs(False, *args, *rest, offsets, empty_i, empty_i, empty_shift, counts)
    np.cumsum(counts, out=offsets[1:])
    n_pairs = int(offsets[-1])
    out_i = np.empty(n_pairs, dtype=np.int64)
    out_j = np.empty(n_pairs, dtype=np.int64)
    out_shift = np.empty((n_pairs, 3), dtype=np.int64)
    _visit_pairs(True, *args, *rest, offsets, out_i, out_j, out_shift, counts)
    return out_i, out_j, out_shift


@numba.njit(parallel=True, cache=True)
def _pair_distances2(positions, cells, system_of_atom, i, j, shift):
    out = np.empty(i.size)
    for e in numba.prange(i.size):
        s = system_of_atom[i[e]]
        d2 = 0.0
        for d in range(3):
            v = (
                positions[j[e], d]
                - positions[i[e], d]
                + shift[e, 0] * cells[s, 0, d]
                + shift[e, 1] * cells[s, 1, d]
                + shift[e, 2] * cells[s, 2, d]
            )
            d2 += v * v
        out[e] = d2
    return out


def pair_distances(
    positions: np.ndarray,
    cells: np.ndarray,
    ptr: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    shift: np.ndarray,
) -> np.ndarray:
    """``|r_j - r_i + shift @ cell|`` for each pair, in Å."""
    system_of_atom = np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))
    d2 = _pair_distances2(
        np.ascontiguousarray(positions, dtype=np.float64),
        np.ascontiguousarray(cells, dtype=np.float64),
        system_of_atom,
        i,
        j,
        np.ascontiguousarray(shift, dtype=np.int64),
    )
    return np.sqrt(d2)
