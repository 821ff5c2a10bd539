"""Optional exact energy conservation of each learned step with a companion potential.

After each learned step the thermal velocities are scaled so that the total energy
``U(r') + K'`` equals the total energy ``E = U(r) + K(v)`` the system had when the step
began (FlashMD's rescaling; Bigi et al., arXiv 2505.19350, §2.3):

    α = sqrt((E - U(r') - K_rot) / K'),     v' <- V_com + ω × (r' - R) + α u',

where ``u'`` are the thermal velocities and ``K'`` their kinetic energy; the centre-of-
mass motion and, for an isolated system whose angular momentum the model keeps, the
rigid rotation (kinetic energy ``K_rot``) are conserved quantities and are not scaled
(:mod:`integrators.kinetics`).

In NVE this keeps the initial energy ``E_0`` for the whole run. With a thermostat the
learned step itself becomes energy-conserving, as a Hamiltonian flow is, and only the
thermostat exchanges energy with the bath: the order is thermostat (before) -> learned
step -> rescaling -> thermostat (after). This removes the slow heating that small
per-step errors of a forecaster otherwise add up to.

Cost: one energy evaluation of the potential per learned step (no forces, so no
backward pass; ``U(r')`` is reused as the next step's ``U(r)``); with a potential the
size of the forecaster this roughly doubles the step's cost, which still leaves most of
the stride's 10-30x gain. The factors of the last step are in
:attr:`EnergyRescaler.factors`; a factor far from 1 means the forecaster errs in energy.
If ``U(r')`` exceeds ``E`` no real α exists and the step fails with
:class:`~integrators.guard.RolloutInstability`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from ase.calculators.calculator import Calculator
from torch import Tensor

from integrators.guard import RolloutInstability
from integrators.kinetics import kinetic_energies
from trajcast_engine.graph import AtomicGraph
from trajcast_engine.neighbors import VerletNeighborList
from trajcast_engine.nn.conservative import ConservativePotential
from trajcast_engine.nn.model_io import load_model

if TYPE_CHECKING:
    from integrators.rollout import ForecastRollout


CALCULATOR_NAMES = ("emt", "asap-emt")  # reference force fields without parameters


def named_calculator(name: object) -> Calculator | None:
    """The ASE calculator a companion's name stands for, else None: ``"emt"`` /
    ``"asap-emt"`` (ASE's or asap3's EMT, a reference force field itself) and
    ``"module:Class"`` (any ASE calculator built without arguments; a path that exists is
    a model file instead)."""
    if not isinstance(name, str):
        return None
    if name.lower() in CALCULATOR_NAMES or (":" in name and not os.path.exists(name)):
        from trajcast_engine.data.reference_md import make_calculator

        return make_calculator(name)
    return None


class EnergyRescaler:
    """Keeps each system's total energy at its initial value (see the module docstring).

    ``potential`` is a :class:`ConservativePotential` (learned or Lennard-Jones; it runs
    on the rollout's device in its own dtype), a model-file path or a shipped model name,
    or an ASE calculator (e.g. the reference force field itself, asap3's included; called
    once per system and step, on the host) or its name (:func:`named_calculator`).
    """

    def __init__(
        self, potential: ConservativePotential | Calculator | str | os.PathLike, skin: float = 1.0
    ):
        self.calculator: Calculator | None = None
        self.initial_energy: np.ndarray | None = None
        self.factors: np.ndarray | None = None
        self.potential_energy: np.ndarray | None = None
        self._u: Tensor | None = None  # U at the rollout's current positions
        calculator = named_calculator(potential)
        if calculator is not None:
            potential = calculator
        if hasattr(potential, "get_potential_energy"):
            # an ASE calculator, e.g. the reference force field itself (duck-typed: asap3's
            # are not subclasses of ASE's Calculator)
            self.calculator = potential
            return
        if not isinstance(potential, ConservativePotential):
            from trajcast_engine.models import SHIPPED, shipped_model_path

            if str(potential) in SHIPPED:
                potential = shipped_model_path(str(potential))
            potential = load_model(potential)
            if not isinstance(potential, ConservativePotential):
                raise ValueError(f"{potential.source} holds a {potential.kind}, not a potential")
        self.potential = potential.eval()
        self.neighbors = VerletNeighborList(potential.config.cutoff, skin)

    def energy(self, graph: AtomicGraph) -> Tensor:
        """(S,) potential energy (eV) of ``graph`` (positions, cell, species)."""
        if self.calculator is not None:
            energies = []
            for atoms in graph.to_atoms():
                atoms.calc = self.calculator
                energies.append(atoms.get_potential_energy())
            return torch.tensor(energies, dtype=graph.dtype, device=graph.device)
        self.potential.to(graph.device)
        pairs = self.neighbors.update(*graph.numpy_geometry())
        g = graph.to(dtype=self.potential.dtype).with_pairs(pairs)
        with torch.no_grad():
            return self.potential(g, compute_forces=False)["energy"].to(graph.dtype)

    def start(self, rollout: ForecastRollout) -> None:
        """Record ``E_0 = U + K`` of the rollout's current state."""
        self._u = self.energy(rollout.graph)
        self.potential_energy = self._u.cpu().numpy()
        self.initial_energy = self.total_energy(rollout, rollout.graph.velocities).cpu().numpy()

    def total_energy(self, rollout: ForecastRollout, velocities: Tensor) -> Tensor:
        """(S,) ``U(r) + K(v)`` at the rollout's positions with ``velocities``."""
        if self._u is None:
            self.start(rollout)
        assert self._u is not None
        g = rollout.graph
        thermal, rotation, _ = rollout.split(velocities)
        moving = thermal + rotation  # orthogonal parts: the kinetic energies add
        return self._u + kinetic_energies(moving, g.masses, g.system_idx, g.n_systems)

    def apply(
        self,
        rollout: ForecastRollout,
        positions: Tensor,
        velocities: Tensor,
        target: Tensor | None = None,
    ) -> Tensor:
        """Velocities scaled so that the energy at the new ``positions`` equals ``target``
        (S,) (default: the initial energy)."""
        if self.initial_energy is None:
            self.start(rollout)
        assert self.initial_energy is not None
        g = rollout.graph
        u = self.energy(g.replace(positions=positions))
        thermal, rotation, com = rollout.split(velocities, positions)
        k = kinetic_energies(thermal, g.masses, g.system_idx, g.n_systems)
        spin = kinetic_energies(rotation, g.masses, g.system_idx, g.n_systems)
        if target is None:
            target = torch.as_tensor(self.initial_energy, dtype=u.dtype, device=u.device)
        room = target - u - spin  # the rotation (fixed angular momentum) is not scaled
        if bool((room <= 0).any()):
            s = int(torch.nonzero(room <= 0)[0])
            raise RolloutInstability(
                f"step {rollout.step_count + 1}: energy rescaling is impossible in system {s}: "
                f"its potential energy {float(u[s]):.6g} eV exceeds the total energy "
                f"{float(target[s]):.6g} eV",
                rollout.step_count + 1,
                s,
                None,
            )
        alpha = torch.sqrt(room / k)
        self.factors = alpha.cpu().numpy()
        self._u = u
        self.potential_energy = u.cpu().numpy()
        return com + rotation + alpha[g.system_idx, None] * thermal
