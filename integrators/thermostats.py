"""Thermostats that act on velocities around a learned step (batched, per-system noise).

Both act on the thermal velocities ``v - V_com - ω × (r - R)``: what the conservation
layer keeps (the centre-of-mass motion when momentum is kept, the rigid rotation of an
isolated system whose angular momentum is kept) is left as it is, so the thermostat never
changes a conserved quantity, and ``N_dof = 3N - N_c`` degrees of freedom are counted
(:mod:`integrators.kinetics`). Random numbers come from one seeded
``numpy.random.Generator`` per system, so a batch of replicas draws exactly what the
same replicas would draw one at a time.

**CSVR** (stochastic velocity rescaling; Bussi, Donadio & Parrinello, J. Chem. Phys.
126, 014101 (2007), eq. (A7)), applied after each learned step of length Δt: with
``c = exp(-Δt/τ)``, target ``K̄ = N_dof k_B T / 2``, current ``K``, ``R_1 ~ N(0, 1)``
and ``S ~ χ²(N_dof - 1)``,

    α² = c + (1 - c) (K̄ / (N_dof K)) (R_1² + S) + 2 R_1 sqrt(c (1 - c) K̄ / (N_dof K)),

with the sign of α that of ``R_1 + sqrt(c N_dof K / ((1 - c) K̄))``, and ``v <- α v``.
The kinetic energy then samples the canonical Gamma(N_dof/2, k_B T) distribution.

**Langevin** (an exact Ornstein-Uhlenbeck half step before and after the learned step,
the "OBO" splitting of Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34):
with ``c = exp(-Δt / (2τ))`` (friction γ = 1/τ),

    v_i <- c v_i + sqrt((1 - c²) k_B T / m_i) ξ_i,     ξ_i ~ N(0, 1)³,

with the noise's centre-of-mass and rigid-rotation components removed likewise.
Units: fs, K, amu, Å/fs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from integrators.kinetics import EV_PER_AMU_A2_FS2, KB, kinetic_energies
from integrators.temperature import TemperatureSchedule, broadcast_temperature, tau_check

if TYPE_CHECKING:
    from integrators.rollout import ForecastRollout


class Thermostat:
    """Base class: a target-temperature schedule and hooks around the learned step."""

    name = "none"

    def __init__(self, temperature: object, tau_fs: float | None = None) -> None:
        self.schedule = TemperatureSchedule.from_value(temperature)
        self.tau_fs = None if tau_fs is None else tau_check(tau_fs)

    def bind(self, timestep_fs: float) -> None:
        """Called by the rollout: an unset ``tau_fs`` becomes 10 strides (TrajCast's
        default, which held the target within 1 K)."""
        if self.tau_fs is None:
            self.tau_fs = 10.0 * float(timestep_fs)

    def targets(self, time_fs: float, n_systems: int) -> np.ndarray:
        """(S,) target temperatures in K at ``time_fs``."""
        return broadcast_temperature(self.schedule(time_fs), n_systems)

    def before(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        """Velocities entering the learned step (default: unchanged)."""
        return velocities

    def after(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        """Velocities leaving the learned step (default: unchanged)."""
        return velocities

    def __repr__(self) -> str:
        tau = "10 strides" if self.tau_fs is None else f"{self.tau_fs:g} fs"
        return f"{type(self).__name__}({self.schedule!r}, tau={tau})"


def csvr_factors(
    kinetic: np.ndarray,
    target: np.ndarray,
    dof: np.ndarray,
    c: float,
    rngs: list[np.random.Generator],
) -> np.ndarray:
    """(S,) CSVR scaling factors α (see the module docstring); 1 where K or N_dof is 0."""
    alphas = np.ones(len(kinetic))
    for s, rng in enumerate(rngs):
        nf, k = float(dof[s]), float(kinetic[s])
        r1 = rng.standard_normal()
        rest = 2.0 * rng.standard_gamma(0.5 * (nf - 1.0)) if nf > 1 else 0.0
        if k <= 0.0 or nf <= 0:
            continue
        ratio = target[s] / (nf * k)  # K̄ / (N_dof K)
        alpha2 = (
            c + (1.0 - c) * ratio * (r1 * r1 + rest) + 2.0 * r1 * math.sqrt(c * (1.0 - c) * ratio)
        )
        sign = 1.0 if r1 + math.sqrt(c / ((1.0 - c) * ratio)) >= 0 else -1.0
        alphas[s] = sign * math.sqrt(max(alpha2, 0.0))
    return alphas


class CSVR(Thermostat):
    """Bussi-Donadio-Parrinello stochastic velocity rescaling after each learned step."""

    name = "csvr"

    def after(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        g = rollout.graph
        thermal, rotation, com = rollout.split(velocities, rollout.next_positions)
        kinetic = kinetic_energies(thermal, g.masses, g.system_idx, g.n_systems)
        dof = rollout.degrees_of_freedom
        targets = self.targets(rollout.time_fs + rollout.timestep, g.n_systems)
        target_k = 0.5 * dof * KB * targets
        c = math.exp(-rollout.timestep / self.tau_fs)
        alphas = csvr_factors(kinetic.detach().cpu().numpy(), target_k, dof, c, rollout.rngs)
        alpha = torch.as_tensor(alphas, dtype=velocities.dtype, device=velocities.device)
        return com + rotation + alpha[g.system_idx, None] * thermal


class Langevin(Thermostat):
    """Exact Ornstein-Uhlenbeck half steps on the velocities around each learned step."""

    name = "langevin"

    def _half_step(
        self, rollout: ForecastRollout, velocities: Tensor, time_fs: float, positions: Tensor
    ) -> Tensor:
        g = rollout.graph
        thermal, rotation, com = rollout.split(velocities, positions)
        c = math.exp(-0.5 * rollout.timestep / self.tau_fs)
        targets = self.targets(time_fs, g.n_systems)
        ptr = g.ptr.tolist()
        noise = np.concatenate(
            [rng.standard_normal((ptr[s + 1] - ptr[s], 3)) for s, rng in enumerate(rollout.rngs)]
        )
        xi = torch.as_tensor(noise, dtype=velocities.dtype, device=velocities.device)
        kt = torch.as_tensor(KB * targets, dtype=velocities.dtype, device=velocities.device)
        sigma = torch.sqrt((1.0 - c * c) * kt[g.system_idx] / (g.masses * EV_PER_AMU_A2_FS2))
        kick = rollout.split(sigma[:, None] * xi, positions)[0]
        return com + rotation + c * thermal + kick

    def before(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        return self._half_step(rollout, velocities, rollout.time_fs, rollout.graph.positions)

    def after(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        time_fs = rollout.time_fs + rollout.timestep
        return self._half_step(rollout, velocities, time_fs, rollout.next_positions)
