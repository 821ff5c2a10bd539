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
3. Atoms are counting-sorted by bin; positions are kept in that order as separate x, y, z
   arrays. Two parallel passes over chunks of atoms follow: the first counts each atom's
   pairs, the second writes them at the prefix-sum offsets, so that the output is grouped
   by ``i`` in ascending order without locks. Both inner loops are branch-free: a pair's
   test adds 0 or 1 to a counter (the atom itself, at distance 0 in its own bin, is
   subtracted once), and the writer stores every candidate in a per-chunk scratch row,
   advancing only past the ones it keeps.

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


@numba.njit(cache=True, inline="always")
def _neighbour_bin(coord, n, periodic):
    """Bin ``coord`` along one axis of ``n`` bins: (bin, cell image, inside). Periodic
    axes wrap and count images; open axes have no bins beyond their ends."""
    if periodic:
        image = coord // n
        return coord - image * n, image, True
    return coord, 0, 0 <= coord < n


@numba.njit(cache=True, inline="always")
def _bins_around(i, s, bin_coord, pbc, n_bins, reach, first_bin, bins, images):
    """Fill ``bins``/``images`` with the bins (and their cell images) to search for atom
    ``i``; return how many, and which entry is the atom's own bin at zero image."""
    nx, ny, nz = n_bins[s, 0], n_bins[s, 1], n_bins[s, 2]
    count = 0
    own = 0
    for ox in range(-reach[s, 0], reach[s, 0] + 1):
        cx, sx, inside = _neighbour_bin(bin_coord[i, 0] + ox, nx, pbc[s, 0])
        if not inside:
            continue
        for oy in range(-reach[s, 1], reach[s, 1] + 1):
            cy, sy, inside = _neighbour_bin(bin_coord[i, 1] + oy, ny, pbc[s, 1])
            if not inside:
                continue
            for oz in range(-reach[s, 2], reach[s, 2] + 1):
                cz, sz, inside = _neighbour_bin(bin_coord[i, 2] + oz, nz, pbc[s, 2])
                if not inside:
                    continue
                if ox == 0 and oy == 0 and oz == 0:
                    own = count
                bins[count] = first_bin[s] + (cx * ny + cy) * nz + cz
                images[count, 0] = sx
                images[count, 1] = sy
                images[count, 2] = sz
                count += 1
    return count, own


@numba.njit(cache=True, inline="always")
def _image_minus_atom(image, basis, position):
    """``image @ basis - position``: added to a bin atom's position, the pair vector."""
    x = image[0] * basis[0, 0] + image[1] * basis[1, 0] + image[2] * basis[2, 0] - position[0]
    y = image[0] * basis[0, 1] + image[1] * basis[1, 1] + image[2] * basis[2, 1] - position[1]
    z = image[0] * basis[0, 2] + image[1] * basis[1, 2] + image[2] * basis[2, 2] - position[2]
    return x, y, z


@numba.njit(cache=True)
def _max_bins_around(reach):
    most = 1
    for s in range(reach.shape[0]):
        most = max(most, (2 * reach[s, 0] + 1) * (2 * reach[s, 1] + 1) * (2 * reach[s, 2] + 1))
    return most


@numba.njit(parallel=True, cache=True)
def _count_pairs(
    sx_,
    sy_,
    sz_,
    wrapped,
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
    chunk,
):
    """Pairs per atom (self at zero image excluded), branch-free in the inner loop."""
    n_atoms = wrapped.shape[0]
    counts = np.zeros(n_atoms, dtype=np.int64)
    cutoff2 = cutoff * cutoff
    most = _max_bins_around(reach)
    for c in numba.prange((n_atoms + chunk - 1) // chunk):
        bins = np.empty(most, dtype=np.int64)
        images = np.empty((most, 3), dtype=np.int64)
        for k in range(c * chunk, min(n_atoms, (c + 1) * chunk)):
            i = order[k]
            s = system_of_atom[i]
            n_visit, _ = _bins_around(i, s, bin_coord, pbc, n_bins, reach, first_bin, bins, images)
            found = 0
            for v in range(n_visit):
                b = bins[v]
                vx, vy, vz = _image_minus_atom(images[v], bases[s], wrapped[i])
                for m in range(bin_begin[b], bin_begin[b + 1]):
                    dx = sx_[m] + vx
                    dy = sy_[m] + vy
                    dz = sz_[m] + vz
                    found += dx * dx + dy * dy + dz * dz < cutoff2
            counts[i] = found - 1  # the atom itself, in its own bin at distance 0
    return counts


@numba.njit(parallel=True, cache=True)
def _write_pairs(
    sx_,
    sy_,
    sz_,
    wrapped,
    wraps,
    sorted_wraps,
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
    chunk,
    counts,
    offsets,
    out_i,
    out_j,
    out_shift,
):
    """Write every atom's pairs at ``offsets[i]``: candidates go branch-free into a
    per-chunk scratch row, the kept ones are then copied out."""
    n_atoms = wrapped.shape[0]
    cutoff2 = cutoff * cutoff
    most = _max_bins_around(reach)
    for c in numba.prange((n_atoms + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(n_atoms, (c + 1) * chunk)
        room = 1
        for k in range(lo, hi):
            room = max(room, counts[order[k]] + 2)
        keep_m = np.empty(room, dtype=np.int64)
        keep_v = np.empty(room, dtype=np.int64)
        bins = np.empty(most, dtype=np.int64)
        images = np.empty((most, 3), dtype=np.int64)
        for k in range(lo, hi):
            i = order[k]
            s = system_of_atom[i]
            n_visit, own = _bins_around(
                i, s, bin_coord, pbc, n_bins, reach, first_bin, bins, images
            )
            n = 0
            for v in range(n_visit):
                b = bins[v]
                vx, vy, vz = _image_minus_atom(images[v], bases[s], wrapped[i])
                for m in range(bin_begin[b], bin_begin[b + 1]):
                    dx = sx_[m] + vx
                    dy = sy_[m] + vy
                    dz = sz_[m] + vz
                    keep_m[n] = m
                    keep_v[n] = v
                    inside = dx * dx + dy * dy + dz * dz < cutoff2
                    n += inside & ((m != k) | (v != own))
            o = offsets[i]
            for q in range(n):
                m = keep_m[q]
                v = keep_v[q]
                out_i[o + q] = i
                out_j[o + q] = order[m]
                out_shift[o + q, 0] = images[v, 0] + sorted_wraps[m, 0] - wraps[i, 0]
                out_shift[o + q, 1] = images[v, 1] + sorted_wraps[m, 1] - wraps[i, 1]
                out_shift[o + q, 2] = images[v, 2] + sorted_wraps[m, 2] - wraps[i, 2]


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
    sorted_pos = wrapped[order]
    sx_, sy_, sz_ = (np.ascontiguousarray(sorted_pos[:, d]) for d in range(3))
    sorted_wraps = np.ascontiguousarray(wraps[order])
    geometry = (bin_coord, system_of_atom, pbc, bases, n_bins, reach, first_bin, order)
    chunk = 64
    counts = _count_pairs(sx_, sy_, sz_, wrapped, *geometry, bin_begin, float(cutoff), chunk)
    offsets = np.zeros(n_atoms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n_pairs = int(offsets[-1])
    out_i = np.empty(n_pairs, dtype=np.int64)
    out_j = np.empty(n_pairs, dtype=np.int64)
    out_shift = np.empty((n_pairs, 3), dtype=np.int64)
    _write_pairs(
        sx_,
        sy_,
        sz_,
        wrapped,
        wraps,
        sorted_wraps,
        *geometry,
        bin_begin,
        float(cutoff),
        chunk,
        counts,
        offsets,
        out_i,
        out_j,
        out_shift,
    )
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
