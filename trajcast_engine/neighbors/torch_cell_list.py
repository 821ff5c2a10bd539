"""A cell list in torch: neighbour lists built where the tensors live (CPU or CUDA).

For a fully periodic cell with lattice vectors ``a_k`` (rows of ``cell``), fractional
coordinates ``s = r · cell⁻¹`` are wrapped into [0, 1) and binned into ``n_k =
floor(d_k / r_c)`` bins along each axis, ``d_k`` being the distance between the lattice
planes spanned by the other two vectors. A pair closer than ``r_c`` has
``|Δs_k| = |Δr · b_k| ≤ r_c / d_k ≤ 1 / n_k`` (``b_k`` the reciprocal vectors), so its atoms
sit in the same or adjacent bins: the 27 neighbouring bins (wrapping around with an image
shift ``q``) hold every pair, each exactly once when ``n_k ≥ 3``. The edge vector of a
pair is ``r_j - r_i + S · cell`` with ``S = q + w_i - w_j``, ``w`` the cells by which each
atom was wrapped, the same convention as the Numba list (``i`` receiver, ``j`` sender,
sorted by ``i``).

Cells narrower than three cutoffs along some axis, and systems that are not periodic in
all directions, are outside this method: :func:`supports` says so and callers use the
Numba list for them.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.long)


def bins_per_axis(cell: Tensor, cutoff: float) -> Tensor:
    """(3,) ``floor(d_k / cutoff)`` for a cell with lattice vectors as rows."""
    volume = torch.linalg.det(cell).abs()
    cross = torch.stack(
        [
            torch.linalg.cross(cell[1], cell[2]),
            torch.linalg.cross(cell[2], cell[0]),
            torch.linalg.cross(cell[0], cell[1]),
        ]
    )
    spacing = volume / torch.linalg.norm(cross, dim=1)
    return torch.floor(spacing / cutoff).long()


def supports(cells: Tensor, pbc: Tensor, cutoff: float) -> bool:
    """Whether every system is fully periodic and at least three cutoffs wide."""
    if not bool(pbc.all()):
        return False
    return all(bool((bins_per_axis(c, cutoff) >= 3).all()) for c in cells)


def _one_system(positions: Tensor, cell: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    n_bins = bins_per_axis(cell, cutoff)
    fractional = positions @ torch.linalg.inv(cell)
    wraps = torch.floor(fractional)
    wrapped = fractional - wraps
    b = torch.minimum((wrapped * n_bins).long(), n_bins - 1)
    bin_id = (b[:, 0] * n_bins[1] + b[:, 1]) * n_bins[2] + b[:, 2]
    order = torch.argsort(bin_id, stable=True)
    total = int(n_bins.prod())
    counts = torch.bincount(bin_id, minlength=total)
    starts = torch.cumsum(counts, 0) - counts

    offsets = _OFFSETS.to(positions.device)  # (27, 3)
    neighbour = b[:, None, :] + offsets[None, :, :]  # (N, 27, 3)
    image = torch.div(neighbour, n_bins, rounding_mode="floor")  # -1, 0, 1 per axis
    neighbour = neighbour - image * n_bins
    nid = (neighbour[..., 0] * n_bins[1] + neighbour[..., 1]) * n_bins[2] + neighbour[..., 2]
    per = counts[nid].reshape(-1)  # candidates per (atom, offset)
    n = positions.shape[0]
    i = torch.arange(n, device=positions.device).repeat_interleave(27).repeat_interleave(per)
    slot = torch.arange(n * 27, device=positions.device).repeat_interleave(per)
    first = torch.cumsum(per, 0) - per
    rank = torch.arange(int(per.sum()), device=positions.device) - first.repeat_interleave(per)
    j = order[starts[nid.reshape(-1)][slot] + rank]
    q = image.reshape(-1, 3)[slot]
    delta = (wrapped[j] + q.to(wrapped.dtype) - wrapped[i]) @ cell
    keep = (delta * delta).sum(1) < cutoff * cutoff
    keep &= ~((i == j) & (q == 0).all(1))
    i, j, q = i[keep], j[keep], q[keep]
    shift = q + wraps[i].long() - wraps[j].long()
    return torch.stack([i, j]), shift


def torch_neighbor_list(
    positions: Tensor, cells: Tensor, pbc: Tensor, ptr: Tensor, cutoff: float
) -> tuple[Tensor, Tensor]:
    """``(edge_index (2, E), edge_shift (E, 3))`` for a batch of fully periodic systems,
    on the tensors' device; ``ValueError`` for systems :func:`supports` rejects."""
    if not supports(cells, pbc, cutoff):
        raise ValueError(
            "the torch cell list needs fully periodic cells at least three cutoffs wide; "
            "use the Numba list (trajcast_engine.neighbors.neighbor_list)"
        )
    indices, shifts = [], []
    bounds = ptr.tolist()
    for s in range(cells.shape[0]):
        lo, hi = bounds[s], bounds[s + 1]
        index, shift = _one_system(positions[lo:hi], cells[s], float(cutoff))
        indices.append(index + lo)
        shifts.append(shift)
    index, shift = torch.cat(indices, dim=1), torch.cat(shifts)
    order = torch.argsort(index[0], stable=True)
    return index[:, order], shift[order]


class TorchVerletNeighborList:
    """The Verlet-skin rule of :class:`~trajcast_engine.neighbors.VerletNeighborList` on
    device tensors: rebuilt when the two largest displacements since the build sum past
    ``skin``, or the cells, pbc or layout change."""

    def __init__(self, cutoff: float, skin: float = 1.0) -> None:
        self.cutoff, self.skin = float(cutoff), float(skin)
        self.n_builds = 0
        self.rebuilt = False
        self._reference: Tensor | None = None
        self._key: tuple | None = None
        self._edges: tuple[Tensor, Tensor] | None = None

    def update(
        self, positions: Tensor, cells: Tensor, pbc: Tensor, ptr: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Edges closer than ``cutoff + skin`` (a superset of those within the cutoff)."""
        key = (cells.detach().cpu().numpy().tobytes(), pbc.cpu().numpy().tobytes(),
               ptr.cpu().numpy().tobytes())  # fmt: skip
        self.rebuilt = self._edges is None or key != self._key
        if not self.rebuilt and self._reference is not None:
            moved = torch.linalg.norm(positions - self._reference, dim=1)
            top = torch.topk(moved, min(2, moved.numel())).values
            self.rebuilt = bool(top.sum() > self.skin)
        if self.rebuilt:
            self._edges = torch_neighbor_list(positions, cells, pbc, ptr, self.cutoff + self.skin)
            self._reference = positions.detach().clone()
            self._key = key
            self.n_builds += 1
        assert self._edges is not None
        return self._edges
