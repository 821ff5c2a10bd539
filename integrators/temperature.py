"""Target temperatures over a run: constant, per system, a linear ramp, or any function.

A :class:`TemperatureSchedule` maps simulated time (fs) to a target temperature (K) per
system. A ramp ``T(t) = T0 + (T1 - T0) · clip((t - t0) / duration, 0, 1)`` whose
duration is left open is fixed by the integrator to the length of the next ``run``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def _check_positive(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{what} must be positive and finite (K), got {values.tolist()}")
    return values


class TemperatureSchedule:
    """Target temperature (K) as a function of simulated time (fs).

    ``TemperatureSchedule(300)``: constant; ``TemperatureSchedule([300, 600])``: one per
    system (replicas); ``TemperatureSchedule.ramp(300, 900, 5000)``: from 300 K to
    900 K over 5 ps; ``TemperatureSchedule(fn)``: ``fn(time_fs)`` in K.
    """

    def __init__(
        self,
        temperature: float | Sequence[float] | Callable[[float], float],
    ) -> None:
        self._function: Callable[[float], float] | None = None
        self._ramp: tuple[np.ndarray, np.ndarray, float, float | None] | None = None
        self._constant: np.ndarray | None = None
        if callable(temperature):
            self._function = temperature
        else:
            values = np.atleast_1d(np.asarray(temperature, dtype=np.float64))
            self._constant = _check_positive(values, "temperature")

    @classmethod
    def ramp(
        cls,
        start: float | Sequence[float],
        end: float | Sequence[float],
        duration_fs: float | None = None,
        start_time_fs: float = 0.0,
    ) -> TemperatureSchedule:
        """A linear ramp; ``duration_fs=None`` lets the integrator set it to the length
        of the next run."""
        schedule = cls(1.0)
        t0 = _check_positive(np.atleast_1d(np.asarray(start, np.float64)), "ramp start")
        t1 = _check_positive(np.atleast_1d(np.asarray(end, np.float64)), "ramp end")
        if duration_fs is not None and not duration_fs > 0:
            raise ValueError(f"ramp duration must be > 0 fs, got {duration_fs}")
        schedule._constant = None
        schedule._ramp = (t0, t1, float(start_time_fs), duration_fs)
        return schedule

    @classmethod
    def from_value(cls, value: object) -> TemperatureSchedule:
        """Accept a schedule, a number, one number per system, a ``(start, end)`` ramp
        given as a tuple, or a function of time in fs."""
        if isinstance(value, TemperatureSchedule):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls.ramp(value[0], value[1])
        return cls(value)  # type: ignore[arg-type]

    @property
    def open_ramp(self) -> bool:
        """A ramp still waiting for its duration."""
        return self._ramp is not None and self._ramp[3] is None

    def close_ramp(self, start_time_fs: float, duration_fs: float) -> None:
        """Fix an open ramp to run from ``start_time_fs`` over ``duration_fs``."""
        if self._ramp is not None and self._ramp[3] is None:
            if not duration_fs > 0:
                raise ValueError("a temperature ramp needs a run of at least one step")
            self._ramp = (self._ramp[0], self._ramp[1], float(start_time_fs), duration_fs)

    def __call__(self, time_fs: float) -> np.ndarray:
        """Target temperature(s) at ``time_fs``: an array of one value or one per system."""
        if self._constant is not None:
            return self._constant
        if self._ramp is not None:
            t0, t1, start, duration = self._ramp
            if duration is None:
                return t0
            x = min(max((time_fs - start) / duration, 0.0), 1.0)
            return t0 + (t1 - t0) * x
        assert self._function is not None
        value = np.atleast_1d(np.asarray(self._function(time_fs), dtype=np.float64))
        return _check_positive(value, f"temperature at t = {time_fs} fs")

    def __repr__(self) -> str:
        if self._constant is not None:
            return f"TemperatureSchedule({self._constant.tolist()} K)"
        if self._ramp is not None:
            t0, t1, _, duration = self._ramp
            span = "the next run" if duration is None else f"{duration:g} fs"
            return f"TemperatureSchedule(ramp {t0.tolist()} -> {t1.tolist()} K over {span})"
        return f"TemperatureSchedule({self._function!r})"


def broadcast_temperature(values: np.ndarray, n_systems: int) -> np.ndarray:
    """One target per system from one value or one per system."""
    if values.size == 1:
        return np.full(n_systems, float(values[0]))
    if values.size != n_systems:
        raise ValueError(f"{values.size} temperatures given for {n_systems} systems")
    return values


def tau_check(tau_fs: float, what: str = "tau") -> float:
    """A relaxation time in fs, positive and finite."""
    tau_fs = float(tau_fs)
    if not (math.isfinite(tau_fs) and tau_fs > 0):
        raise ValueError(f"{what} must be a positive time in fs, got {tau_fs}")
    return tau_fs
