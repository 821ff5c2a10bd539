"""ASE molecular dynamics driven by the forecaster: thin adapters over the rollout.

``ForecastNVE``, ``ForecastCSVR`` and ``ForecastLangevin`` are
:class:`ase.md.md.MolecularDynamics` subclasses, so ``attach``, observers such as the
:class:`~trajcast_engine.trajectory.TrajectoryWriter` and ASE trajectories work as
usual; ``dyn.nsteps`` counts learned steps and ``dyn.get_time()`` is in ASE time units
(``nsteps · Δt``). They never ask ASE for forces: ``irun`` is overridden (ASE's base
class calls ``get_forces`` every step), so the atoms need no calculator. Energy
loggers that ask the atoms for a potential energy need one; use
:class:`integrators.logger.ForecastLogger`, which does not.

The timestep is the model's stride (fs); another value is an error naming both. If the
atoms are changed between two ``run`` calls (positions, momenta, cell), the next step
starts from the changed state.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from ase import Atoms, units
from ase.md.md import MolecularDynamics
from torch import nn

from integrators.energy_rescale import EnergyRescaler
from integrators.guard import RolloutInstability, StabilityGuard
from integrators.rollout import ForecastRollout, check_timestep, load_forecaster
from integrators.thermostats import CSVR, Langevin, Thermostat
from trajcast_engine.graph import from_atoms


class ForecastDynamics(MolecularDynamics):
    """Learned large-timestep MD on one ``Atoms`` (base of the three integrators).

    ``model``: a forecaster, model file or shipped name; ``timestep``: optional check
    against the model's stride, in fs; ``thermostat``: a
    :class:`~integrators.thermostats.Thermostat` or None; ``seed``: seeds the noise;
    ``device``/``dtype``: where and how the model runs; ``guard``: the
    :class:`~integrators.guard.StabilityGuard`; ``energy_rescale``: a potential (object
    or file or shipped name) or an ASE calculator (object, or ``"emt"``, ``"asap-emt"``,
    ``"module:Class"``) that makes each learned step conserve energy (NVE: the total
    energy stays at its initial value); ``logfile``: a
    :class:`~integrators.logger.ForecastLogger` written every ``loginterval`` steps.
    """

    def __init__(
        self,
        atoms: Atoms,
        model: nn.Module | str | os.PathLike,
        timestep: float | None = None,
        *,
        thermostat: Thermostat | None = None,
        seed: int | None = None,
        device: str | None = "cpu",
        dtype: str | None = None,
        skin: float = 1.0,
        guard: StabilityGuard | None = None,
        energy_rescale: Any = None,
        trajectory: str | None = None,
        logfile: IO | str | None = None,
        loginterval: int = 1,
        **kwargs: Any,
    ) -> None:
        if atoms.constraints:
            raise ValueError(
                "the learned integrators do not support ASE constraints "
                f"({[type(c).__name__ for c in atoms.constraints]}): the forecaster moves "
                "every atom; momentum is kept by its conservation layer"
            )
        self.model = load_forecaster(model, device, dtype)
        dt_fs = check_timestep(self.model, timestep)
        if not atoms.has("momenta"):
            atoms.set_momenta(np.zeros((len(atoms), 3)))
        rescaler = None if energy_rescale is None else EnergyRescaler(energy_rescale, skin)
        self.rollout = ForecastRollout(
            self.model,
            from_atoms(atoms),
            thermostat=thermostat,
            seed=seed,
            skin=skin,
            guard=guard,
            rescaler=rescaler,
        )
        super().__init__(atoms, dt_fs * units.fs, trajectory=trajectory, loginterval=loginterval,
                         **kwargs)  # fmt: skip
        self._pushed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._remember()
        if logfile:
            from integrators.logger import ForecastLogger

            logger = self.closelater(ForecastLogger(self, logfile))
            self.attach(logger, loginterval)

    # ---- state exchange with the atoms -------------------------------------------------
    def _remember(self) -> None:
        a = self.atoms
        self._pushed = (a.positions.copy(), a.get_momenta().copy(), a.cell.array.copy())

    def _pull_if_changed(self) -> None:
        a = self.atoms
        assert self._pushed is not None
        positions, momenta, cell = self._pushed
        if (
            np.array_equal(a.positions, positions)
            and np.array_equal(a.get_momenta(), momenta)
            and np.array_equal(a.cell.array, cell)
        ):
            return
        self.rollout.set_state(a.positions, a.get_velocities() * units.fs, a.cell.array)

    def _push(self) -> None:
        g = self.rollout.graph
        self.atoms.positions = g.positions.detach().cpu().numpy().astype(np.float64)
        velocities = g.velocities.detach().cpu().numpy().astype(np.float64)
        self.atoms.set_momenta(velocities / units.fs * self.masses, apply_constraint=False)
        self._remember()

    # ---- the MD loop ---------------------------------------------------------------------
    def step(self) -> None:
        """One learned step of Δt (no force evaluation)."""
        self._pull_if_changed()
        self.rollout.step()
        self._push()

    def _refresh_properties(self) -> None:
        """ASE's base class computes forces here; a learned step needs none."""

    def irun(self, steps: int = 50) -> Iterator[bool]:
        """Run ``steps`` learned steps as a generator (ASE's protocol, without forces).

        On a :class:`RolloutInstability` every attached observer with a ``flush``
        method (trajectory writers) is flushed before the error propagates, so the
        frames written so far stay on disk.
        """
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.max_steps = self.nsteps + int(steps)
        thermostat = self.rollout.thermostat
        if thermostat is not None and thermostat.schedule.open_ramp:
            thermostat.schedule.close_ramp(self.rollout.time_fs, int(steps) * self.timestep_fs)
        if self.nsteps == 0:
            self.call_observers()
        yield self.nsteps >= self.max_steps
        while self.nsteps < self.max_steps:
            try:
                self.step()
            except RolloutInstability:
                self._flush_observers()
                raise
            self.nsteps += 1
            self.call_observers()
            yield self.nsteps >= self.max_steps

    def run(self, steps: int = 50) -> bool:
        """Run ``steps`` learned steps; returns True."""
        for _ in self.irun(steps):
            pass
        return True

    def _flush_observers(self) -> None:
        for function, *_ in self.observers:
            target = getattr(function, "__self__", function)
            flush = getattr(target, "flush", None)
            if callable(flush):
                with contextlib.suppress(Exception):  # a closed file must not hide the error
                    flush()

    # ---- what loggers read ---------------------------------------------------------------
    @property
    def timestep_fs(self) -> float:
        """The stride Δt in fs."""
        return self.rollout.timestep

    def get_temperature(self) -> float:
        """Instantaneous temperature (K) over ``3N - N_c`` degrees of freedom."""
        return float(self.rollout.temperatures()[0])

    def get_species_temperatures(self) -> dict[str, float]:
        """Per-element temperatures (K): a learned step that loses equipartition shows
        up here first."""
        from ase.data import chemical_symbols

        return {
            chemical_symbols[z]: float(t[0]) for z, t in self.rollout.species_temperatures().items()
        }

    def get_target_temperature(self) -> float | None:
        """The thermostat's current target (K), None in NVE."""
        targets = self.rollout.target_temperatures()
        return None if targets is None else float(targets[0])

    @property
    def rescale_factor(self) -> float | None:
        """The last energy-rescaling factor α (None without rescaling)."""
        rescaler = self.rollout.rescaler
        if rescaler is None or rescaler.factors is None:
            return None
        return float(rescaler.factors[0])

    def todict(self) -> dict[str, Any]:
        d = super().todict()
        d.update(
            {
                "model": getattr(self.model, "source", type(self.model).__name__),
                "timestep_fs": self.timestep_fs,
                "thermostat": repr(self.rollout.thermostat),
            }
        )
        return d


class ForecastNVE(ForecastDynamics):
    """Plain learned steps (microcanonical up to the model's error; ``energy_rescale``
    with a potential makes the energy exact)."""

    def __init__(self, atoms: Atoms, model: Any, timestep: float | None = None, **kw: Any):
        super().__init__(atoms, model, timestep, **kw)


class _ThermostattedDynamics(ForecastDynamics):
    """Learned steps under ``thermostat_class``; ``tau`` None means 10 strides."""

    thermostat_class: type[Thermostat]

    def __init__(
        self,
        atoms: Atoms,
        model: Any,
        temperature_K: Any,
        tau: float | None = None,
        timestep: float | None = None,
        **kw: Any,
    ) -> None:
        thermostat = self.thermostat_class(temperature_K, tau)
        super().__init__(atoms, model, timestep, thermostat=thermostat, **kw)


class ForecastCSVR(_ThermostattedDynamics):
    """Learned steps with the Bussi-Donadio-Parrinello thermostat after each one.

    ``temperature_K``: a number, one per system, a ``(start, end)`` ramp over the next
    ``run`` or a function of time in fs; ``tau``: relaxation time in fs (default 10Δt,
    which held the target within 1 K in the TrajCast paper).
    """

    thermostat_class = CSVR


class ForecastLangevin(_ThermostattedDynamics):
    """Learned steps between two exact Ornstein-Uhlenbeck half steps (friction 1/τ).

    ``temperature_K`` as for :class:`ForecastCSVR`; ``tau``: 1/friction in fs (default
    10Δt).
    """

    thermostat_class = Langevin
