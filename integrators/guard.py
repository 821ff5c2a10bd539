"""The stability guard: stop a rollout that blows up, saying where.

After each learned step (before the state is committed) the guard checks, in order:
non-finite displacements or velocities; an atom that moved more than
``max_displacement`` Å in one step; a system hotter than ``max_temperature_factor``
times its target (the thermostat's target, or the initial temperature in NVE). A
failure raises :class:`RolloutInstability` naming the step, system, atom and quantity;
the integrators flush their trajectory writers first, so every frame written so far is
kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import Tensor


class RolloutInstability(RuntimeError):
    """A learned rollout left the physical regime (see :class:`StabilityGuard`)."""

    def __init__(self, message: str, step: int, system: int, atom: int | None) -> None:
        super().__init__(message)
        self.step, self.system, self.atom = step, system, atom


class StabilityGuard:
    """Limits checked after every learned step (set a limit to ``inf`` to disable it)."""

    def __init__(self, max_displacement: float = 2.0, max_temperature_factor: float = 5.0):
        if not max_displacement > 0 or not max_temperature_factor > 1:
            raise ValueError(
                "max_displacement must be > 0 Å and max_temperature_factor > 1, got "
                f"{max_displacement}, {max_temperature_factor}"
            )
        self.max_displacement = float(max_displacement)
        self.max_temperature_factor = float(max_temperature_factor)

    def check_forecast(
        self,
        step: int,
        displacements: Tensor,
        velocities: Tensor,
        species: Tensor,
        system_idx: Tensor,
        ptr: Tensor,
    ) -> None:
        """Raise :class:`RolloutInstability` for a non-finite forecast or an atom that
        moved too far (run on the raw forecast, before any thermostat mixes atoms)."""

        def where(atom: int) -> tuple[int, int, str]:
            s = int(system_idx[atom])
            local = atom - int(ptr[s])
            return s, local, chemical_symbols[int(species[atom])]

        for name, values in (("displacement", displacements), ("velocity", velocities)):
            bad = ~torch.isfinite(values).all(dim=1)
            if bool(bad.any()):
                atom = int(torch.nonzero(bad)[0])
                s, local, symbol = where(atom)
                raise RolloutInstability(
                    f"step {step}: the forecast {name} of atom {local} ({symbol}) in system "
                    f"{s} is not finite (NaN or inf)",
                    step,
                    s,
                    local,
                )
        moved = torch.linalg.norm(displacements, dim=1)
        if moved.numel() and math.isfinite(self.max_displacement):
            atom = int(torch.argmax(moved))
            if float(moved[atom]) > self.max_displacement:
                s, local, symbol = where(atom)
                raise RolloutInstability(
                    f"step {step}: atom {local} ({symbol}) in system {s} moved "
                    f"{float(moved[atom]):.3g} Å in one step (limit {self.max_displacement:g} "
                    "Å): the model left its training regime",
                    step,
                    s,
                    local,
                )

    def check_temperature(
        self, step: int, temperatures: np.ndarray, reference: np.ndarray | None
    ) -> None:
        """Raise :class:`RolloutInstability` for a system hotter than the limit."""
        if reference is None or not math.isfinite(self.max_temperature_factor):
            return
        for s, (t, t_ref) in enumerate(zip(temperatures, reference, strict=True)):
            if t_ref > 0 and not t <= self.max_temperature_factor * t_ref:
                raise RolloutInstability(
                    f"step {step}: system {s} reached a temperature of {t:.4g} K, more than "
                    f"{self.max_temperature_factor:g}x the target {t_ref:.4g} K",
                    step,
                    s,
                    None,
                )
