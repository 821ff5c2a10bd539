"""Harmonic phonon modes of a crystal and the temperature of each mode along a run.

A crystal's motion about its lattice sites ``R`` is, to lowest order, a set of
independent harmonic modes. With the force-constant matrix ``Φ = ∂²U/∂u∂u`` (eV/Å²,
central finite differences of the forces at the sites) and the mass-weighted dynamical
matrix ``D = M^{-1/2} Φ M^{-1/2}`` with eigenpairs ``(ω_k², e_k)``, a frame's displacements
``u_i = r_i - R_i`` (minimum image, the centre-of-mass drift removed) and velocities
``v_i`` give the mode coordinates ``q_k = e_k · M^{1/2} u`` and ``q̇_k = e_k · M^{1/2} v``,
and each mode two temperatures

    T_pot,k = ω_k² ⟨q_k²⟩ / k_B,        T_kin,k = ⟨q̇_k²⟩ / k_B.

In the canonical ensemble of a harmonic crystal both equal T for every mode
(equipartition); anharmonicity moves ``T_pot`` of real crystals by a few per cent, alike in
a reference run and a run that reproduces it. Averaged over frequency bands they show
where a run's energy sits: a learned integrator that damps one band and feeds another
under a global thermostat reads cold and hot bands at the right mean temperature (Born &
Huang, *Dynamical Theory of Crystal Lattices*, 1954, ch. 2; Dove, *Introduction to
Lattice Dynamics*, 1993, ch. 4). Only the Γ-point modes of the simulated supercell
exist in it, which are the ones computed here. Units: Å, fs, amu, eV, THz, K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from integrators.kinetics import EV_PER_AMU_A2_FS2, KB
from trajcast_engine.analysis import TrajectoryData


@dataclass
class HarmonicModes:
    """The supercell's Γ-point phonons: ``frequencies`` (M,) THz, ``vectors`` (3N, M)
    orthonormal eigenvectors of the dynamical matrix, ``eigenvalues`` (M,) ``ω²`` in
    eV/(Å² amu), lattice ``sites`` (N, 3) Å, ``masses`` (N,) amu and ``cell`` (3, 3) Å;
    the three translations are left out (M = 3N - 3)."""

    frequencies: np.ndarray
    vectors: np.ndarray
    eigenvalues: np.ndarray
    sites: np.ndarray
    masses: np.ndarray
    cell: np.ndarray


def harmonic_modes(
    lattice: Atoms, calculator: object | None = None, delta: float = 1e-3
) -> HarmonicModes:
    """The Γ-point modes of ``lattice`` (its positions are the sites, which should be a
    minimum of the potential) from central differences of the forces of ``calculator``
    (default: the one attached) with steps of ``delta`` Å: 6N force calls."""
    atoms = lattice.copy()
    atoms.calc = calculator if calculator is not None else lattice.calc
    if atoms.calc is None:
        raise ValueError("harmonic_modes needs a calculator for the forces")
    if not all(atoms.pbc):
        raise ValueError("harmonic_modes is for a periodic crystal: the lattice has no full cell")
    sites = atoms.positions.copy()
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    for a in range(n):
        for c in range(3):
            forces = []
            for sign in (1.0, -1.0):
                moved = sites.copy()
                moved[a, c] += sign * delta
                atoms.positions = moved
                forces.append(atoms.get_forces().ravel())
            hessian[3 * a + c] = -(forces[0] - forces[1]) / (2.0 * delta)
    hessian = 0.5 * (hessian + hessian.T)
    masses = atoms.get_masses()
    scale = 1.0 / np.sqrt(np.repeat(masses, 3))
    eigenvalues, vectors = np.linalg.eigh(hessian * scale[:, None] * scale[None, :])
    order = np.argsort(np.abs(eigenvalues))[3:]  # the three translations have ω ≈ 0
    order = order[np.argsort(eigenvalues[order])]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    if np.any(eigenvalues <= 0):
        raise ValueError(
            f"the lattice is not at a minimum: {int(np.sum(eigenvalues <= 0))} unstable modes"
        )
    omega = np.sqrt(eigenvalues / EV_PER_AMU_A2_FS2)  # rad/fs
    return HarmonicModes(
        frequencies=omega / (2.0 * np.pi) * 1000.0, vectors=vectors, eigenvalues=eigenvalues,
        sites=sites, masses=masses, cell=atoms.cell.array.copy(),
    )  # fmt: skip


def mode_coordinates(
    positions: torch.Tensor, velocities: torch.Tensor, modes: HarmonicModes
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, q̇)``, (F, M) each, of F frames of the crystal (positions and velocities
    (F, N, 3), Å and Å/fs, atom for atom the lattice of ``modes``): displacements from the
    sites by minimum image, the centre-of-mass motion removed, mass-weighted and
    projected on the modes (module doc). Differentiable (torch)."""

    def cast(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=positions.dtype, device=positions.device)

    if positions.shape[-2] != len(modes.sites):
        raise ValueError(f"the run has {positions.shape[-2]} atoms, the lattice {len(modes.sites)}")
    cell = cast(modes.cell)
    fractional = (positions - cast(modes.sites)) @ torch.linalg.inv(cell)
    u = (fractional - torch.round(fractional)) @ cell  # minimum image
    share = cast(modes.masses / modes.masses.sum())
    u = u - torch.einsum("n,fnc->fc", share, u)[:, None]
    v = velocities - torch.einsum("n,fnc->fc", share, velocities)[:, None]
    weights, vectors = cast(np.sqrt(np.repeat(modes.masses, 3))), cast(modes.vectors)
    q = (u.reshape(len(u), -1) * weights) @ vectors
    return q, (v.reshape(len(v), -1) * weights) @ vectors


def mode_energies(
    positions: torch.Tensor, velocities: torch.Tensor, modes: HarmonicModes
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(potential, kinetic)``, (F, M) each: the harmonic energy of each mode in each
    frame, ``½ ω² q²`` and ``½ q̇²`` (eV)."""
    q, qdot = mode_coordinates(positions, velocities, modes)
    eigenvalues = torch.as_tensor(modes.eigenvalues, dtype=q.dtype, device=q.device)
    return 0.5 * eigenvalues * q * q, 0.5 * EV_PER_AMU_A2_FS2 * qdot * qdot


def mode_temperatures(data: TrajectoryData, modes: HarmonicModes) -> tuple[np.ndarray, np.ndarray]:
    """``(T_pot, T_kin)``, (M,) K each: every mode's temperatures over the frames of
    ``data`` (module doc), which must hold the crystal of ``modes`` atom for atom."""
    if data.velocities is None:
        raise ValueError(
            "the trajectory has no velocities: the kinetic mode temperatures need them"
        )
    q, qdot = mode_coordinates(
        torch.from_numpy(np.asarray(data.positions, dtype=np.float64)),
        torch.from_numpy(np.asarray(data.velocities, dtype=np.float64)), modes,
    )  # fmt: skip
    t_pot = modes.eigenvalues * np.mean(q.numpy() ** 2, axis=0) / KB
    t_kin = EV_PER_AMU_A2_FS2 * np.mean(qdot.numpy() ** 2, axis=0) / KB
    return t_pot, t_kin


def mode_bands(modes: HarmonicModes, edges: np.ndarray | list[float]) -> np.ndarray:
    """(M,) the band of each mode: ``b`` for ``edges[b] <= ν < edges[b + 1]`` (THz), -1
    below the first edge and ``len(edges) - 1`` from the last on."""
    return np.digitize(modes.frequencies, np.asarray(edges, dtype=float)) - 1


def band_means(
    modes: HarmonicModes, values: np.ndarray, edges: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, means)`` of per-mode ``values`` in the frequency bands between
    consecutive ``edges`` (THz); NaN for an empty band."""
    edges = np.asarray(edges, dtype=float)
    band = mode_bands(modes, edges)
    counts = np.array([np.sum(band == b) for b in range(len(edges) - 1)])
    means = np.array(
        [values[band == b].mean() if counts[b] else np.nan for b in range(len(edges) - 1)]
    )
    return counts, means


def band_temperatures(
    runs: list[TrajectoryData], modes: HarmonicModes, edges: np.ndarray | list[float]
) -> dict[str, list]:
    """Kinetic and potential mode temperatures (K) averaged over ``runs`` and over the
    modes of each frequency band between consecutive ``edges`` (THz):
    ``{"edges", "modes", "kinetic", "potential"}`` as lists."""
    per_run = [mode_temperatures(run, modes) for run in runs]
    result: dict[str, list] = {"edges": [float(e) for e in edges]}
    for k, name in ((1, "kinetic"), (0, "potential")):
        counts, means = band_means(modes, np.mean([t[k] for t in per_run], axis=0), edges)
        result["modes"], result[name] = counts.tolist(), means.tolist()
    return result
