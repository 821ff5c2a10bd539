"""The conservation layer: exact momentum (and optionally angular momentum) of a forecast.

For a system of atoms with masses ``m_i`` (amu), total mass ``M``, input momentum
``P = Σ m_i v_i`` (amu·Å/fs) and forecast ``(Δr_i, v'_i)`` over a stride ``Δt`` (fs):

    v'_i  <-  v'_i - (Σ_j m_j v'_j - P) / M              so that Σ m_i v'_i = P,
    Δr_i  <-  Δr_i - (Σ_j m_j Δr_j - P Δt) / M           so that the centre of mass
                                                          moves by P Δt / M,

i.e. the free flight of the centre of mass, which no internal force changes; with
``P = 0`` the centre of mass stays fixed (TrajCast's conservation layer, Thiemann et al.,
arXiv 2503.23794, §2). Both shifts are the same vector for every atom, so the layer is
equivariant.

Angular momentum (isolated systems only; a periodic system has none to keep): with
``L = Σ m_i (r_i - R) × v_i`` about the centre of mass ``R``, the forecast velocities get
a rigid rotation ``v'_i <- v'_i + ω × (r'_i - R')`` with ``I' ω = L - L'``, where ``I'``
is the inertia tensor at the new positions ``r'_i = r_i + Δr_i`` (a pseudo-inverse for
linear molecules and single atoms). A rigid rotation about the centre of mass adds no
linear momentum, so both laws then hold together.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trajcast_engine.nn.scatter import scatter_sum


def system_sums(values: Tensor, system_idx: Tensor, n_systems: int) -> Tensor:
    """Per-system sums of per-atom rows: (N, ...) -> (S, ...)."""
    return scatter_sum(values, system_idx, n_systems)


def momenta(velocities: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int) -> Tensor:
    """(S, 3) total momentum ``Σ m_i v_i`` of each system (amu·Å/fs)."""
    return system_sums(masses[:, None] * velocities, system_idx, n_systems)


def centres_of_mass(
    positions: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int
) -> Tensor:
    """(S, 3) centre of mass of each system (positions as given, not wrapped)."""
    total = system_sums(masses, system_idx, n_systems)
    return momenta(positions, masses, system_idx, n_systems) / total[:, None]


def angular_momenta(
    positions: Tensor, velocities: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int
) -> Tensor:
    """(S, 3) angular momentum about each system's centre of mass (amu·Å²/fs)."""
    relative = positions - centres_of_mass(positions, masses, system_idx, n_systems)[system_idx]
    return momenta(torch.linalg.cross(relative, velocities), masses, system_idx, n_systems)


def inertia_tensors(
    positions: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int
) -> Tensor:
    """(S, 3, 3) inertia tensor ``Σ m (|d|² 1 - d dᵀ)`` about each centre of mass."""
    d = positions - centres_of_mass(positions, masses, system_idx, n_systems)[system_idx]
    eye = torch.eye(3, dtype=d.dtype, device=d.device)
    per_atom = (d * d).sum(1)[:, None, None] * eye - d[:, :, None] * d[:, None, :]
    return system_sums(masses[:, None, None] * per_atom, system_idx, n_systems)


def conserve_momentum(
    displacements: Tensor,
    velocities: Tensor,
    masses: Tensor,
    system_idx: Tensor,
    n_systems: int,
    momentum: Tensor,
    timestep: float,
) -> tuple[Tensor, Tensor]:
    """Shift ``velocities`` to total momentum ``momentum`` (S, 3) and ``displacements``
    so that the centre of mass moves by ``momentum · timestep / M`` (see module doc)."""
    total = system_sums(masses, system_idx, n_systems)[:, None]
    excess_v = (momenta(velocities, masses, system_idx, n_systems) - momentum) / total
    excess_r = (momenta(displacements, masses, system_idx, n_systems) - momentum * timestep) / total
    return displacements - excess_r[system_idx], velocities - excess_v[system_idx]


def conserve_angular_momentum(
    new_positions: Tensor,
    velocities: Tensor,
    masses: Tensor,
    system_idx: Tensor,
    n_systems: int,
    angular_momentum: Tensor,
    systems: Tensor,
) -> Tensor:
    """Velocities whose angular momentum about the new centre of mass equals
    ``angular_momentum`` (S, 3) for the systems flagged in ``systems`` (S,) bool."""
    current = angular_momenta(new_positions, velocities, masses, system_idx, n_systems)
    inertia = inertia_tensors(new_positions, masses, system_idx, n_systems)
    # pinv with a relative cutoff: a linear molecule has a zero principal moment
    omega = torch.einsum(
        "sij,sj->si", torch.linalg.pinv(inertia, rtol=1e-10), angular_momentum - current
    )
    omega = torch.where(systems[:, None], omega, torch.zeros_like(omega))
    com = centres_of_mass(new_positions, masses, system_idx, n_systems)
    relative = new_positions - com[system_idx]
    return velocities + torch.linalg.cross(omega[system_idx].expand_as(relative), relative)


def constrained_dof(
    positions: Tensor,
    masses: Tensor,
    system_idx: Tensor,
    n_systems: int,
    momentum: bool,
    angular: Tensor | None = None,
) -> Tensor:
    """(S,) degrees of freedom the conservation layer removes: 3 for the momentum (when
    kept), plus the rank of the inertia tensor (3, or 2 for a linear molecule) for the
    systems flagged in ``angular``; never more than 3N."""
    counts = torch.bincount(system_idx, minlength=n_systems)
    removed = torch.full((n_systems,), 3 if momentum else 0, device=positions.device)
    if angular is not None and bool(angular.any()):
        inertia = inertia_tensors(positions, masses, system_idx, n_systems)
        scale = inertia.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-300)
        rank = torch.linalg.matrix_rank(inertia / scale[:, None, None], rtol=1e-8)
        removed = removed + torch.where(angular, rank, torch.zeros_like(rank))
    return torch.minimum(removed, 3 * counts)
