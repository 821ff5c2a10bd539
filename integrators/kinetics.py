"""Kinetic energy and temperatures of a batch of systems, in engine units.

``K_s = ½ Σ_{i∈s} m_i |u_i|²`` (eV) with masses in amu and velocities in Å/fs
(1 amu·Å²/fs² = 103.6427 eV), where the thermal velocities ``u_i = v_i - V_s - ω_s ×
(r_i - R_s)`` leave out what the conservation layer keeps constant and so carries no
heat: the centre-of-mass velocity ``V_s`` when the total momentum is kept, and for an
isolated system whose angular momentum ``L_s`` is kept the rigid rotation with
``I_s ω_s = L_s`` (``I_s`` the inertia tensor about the centre of mass ``R_s``). The
parts are orthogonal: ``Σ m |v - V|² = Σ m |u|² + ω·I ω``.
The temperature is ``T_s = 2 K_s / (N_dof,s k_B)`` with ``N_dof = 3N - N_c``, ``N_c``
the degrees of freedom the conservation layer fixes (Frenkel & Smit, *Understanding
Molecular Simulation*, 2nd ed., §6.1). Per-species temperatures count each atom's own
share of those degrees of freedom, ``N_dof,Z = Σ_{i∈Z} (3 - c_i)``, with ``c_i`` the
canonical average of the removed kinetic energy that atom ``i`` carries, in units of
``k_B T / 2``: the trace of the atom's block of the mass-weighted projection onto the
removed motions, ``c_i = 3 m_i / M`` for the centre-of-mass translation plus
``m_i tr(I⁻¹ (|d_i|² 1 - d_i d_iᵀ))`` for the rigid rotation (``d_i = r_i - R_s``).
They sum to ``N_c`` over a system; heavy atoms and atoms far from the centre carry more,
so in a small molecule at equipartition every element reads the system temperature (an
even share ``N_c / 3N`` an atom reads alanine dipeptide's H / C / N / O at 322 / 273 /
287 / 256 K at equipartition at 300 K).
"""

from __future__ import annotations

import numpy as np
import torch
from ase import units
from torch import Tensor

from trajcast_engine.nn.conservation import (
    angular_momenta,
    centres_of_mass,
    inertia_tensors,
    momenta,
    system_sums,
)

#: eV per amu·Å²/fs²
EV_PER_AMU_A2_FS2 = units._amu * 1e10 / units._e
#: Boltzmann constant, eV/K
KB = units.kB


def thermal_velocities(
    velocities: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int, remove_com: bool
) -> tuple[Tensor, Tensor]:
    """``(v - V_com, V_com per atom)``; with ``remove_com=False`` V_com is zero."""
    if not remove_com:
        return velocities, torch.zeros_like(velocities)
    total = system_sums(masses, system_idx, n_systems)
    com = (momenta(velocities, masses, system_idx, n_systems) / total[:, None])[system_idx]
    return velocities - com, com


def decompose_velocities(
    velocities: Tensor,
    positions: Tensor,
    masses: Tensor,
    system_idx: Tensor,
    n_systems: int,
    remove_com: bool,
    angular: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(thermal, rotation, com)`` per atom with ``velocities = thermal + rotation + com``:
    the centre-of-mass velocity (zero unless ``remove_com``), the rigid rotation of the
    systems flagged in ``angular`` (S,) bool (zero elsewhere) and the rest (module doc)."""
    thermal, com = thermal_velocities(velocities, masses, system_idx, n_systems, remove_com)
    if angular is None or not bool(angular.any()):
        return thermal, torch.zeros_like(thermal), com
    relative = positions - centres_of_mass(positions, masses, system_idx, n_systems)[system_idx]
    spin = angular_momenta(positions, thermal, masses, system_idx, n_systems)
    inertia = inertia_tensors(positions, masses, system_idx, n_systems)
    # pinv with a relative cutoff: a linear molecule has a zero principal moment
    omega = torch.einsum("sij,sj->si", torch.linalg.pinv(inertia, rtol=1e-10), spin)
    omega = torch.where(angular[:, None], omega, torch.zeros_like(omega))
    rotation = torch.linalg.cross(omega[system_idx], relative)
    return thermal - rotation, rotation, com


def kinetic_energies(
    velocities: Tensor, masses: Tensor, system_idx: Tensor, n_systems: int
) -> Tensor:
    """(S,) ``½ Σ m v²`` in eV of the velocities as given."""
    per_atom = 0.5 * masses * (velocities * velocities).sum(1) * EV_PER_AMU_A2_FS2
    return system_sums(per_atom, system_idx, n_systems)


def constrained_shares(
    positions: Tensor,
    masses: Tensor,
    system_idx: Tensor,
    n_systems: int,
    remove_com: bool,
    angular: Tensor | None = None,
) -> Tensor:
    """(N,) ``c_i``: each atom's share of the degrees of freedom removed with the
    centre-of-mass motion (when ``remove_com``) and the rigid rotation (systems flagged in
    ``angular``); they sum to the removed count of each system (module doc)."""
    shares = torch.zeros_like(masses)
    if remove_com:
        shares = shares + 3.0 * masses / system_sums(masses, system_idx, n_systems)[system_idx]
    if angular is not None and bool(angular.any()):
        d = positions - centres_of_mass(positions, masses, system_idx, n_systems)[system_idx]
        inverse = torch.linalg.pinv(inertia_tensors(positions, masses, system_idx, n_systems),
                                    rtol=1e-10)[system_idx]  # fmt: skip
        # m tr(I⁻¹ (|d|² 1 - d dᵀ)) = m (|d|² tr I⁻¹ - dᵀ I⁻¹ d)
        trace = torch.diagonal(inverse, dim1=1, dim2=2).sum(1)
        rotation = masses * ((d * d).sum(1) * trace - torch.einsum("ni,nij,nj->n", d, inverse, d))
        shares = shares + torch.where(angular[system_idx], rotation, torch.zeros_like(rotation))
    return shares


def species_temperatures(
    velocities: Tensor,
    masses: Tensor,
    species: Tensor,
    system_idx: Tensor,
    n_systems: int,
    shares: Tensor,
) -> dict[int, np.ndarray]:
    """``{Z: (S,) temperature in K}`` of each element's atoms from their thermal
    velocities over ``Σ_{i∈Z} (3 - c_i)`` degrees of freedom, ``shares`` the ``c_i`` of
    :func:`constrained_shares`; NaN for a system without that element."""
    result = {}
    for z in torch.unique(species).tolist():
        mask = species == z
        k = kinetic_energies(velocities[mask], masses[mask], system_idx[mask], n_systems)
        dof = system_sums(3.0 - shares[mask], system_idx[mask], n_systems)
        present = torch.bincount(system_idx[mask], minlength=n_systems) > 0
        t = torch.where(present & (dof > 0), 2.0 * k / (dof.clamp_min(1e-300) * KB), torch.nan)
        result[int(z)] = t.detach().cpu().numpy()
    return result
