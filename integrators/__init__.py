"""Large-timestep integrators driven by a trained forecaster.

The batched core is :class:`ForecastRollout` (many systems, one forward pass per step);
:class:`ForecastNVE`, :class:`ForecastCSVR` and :class:`ForecastLangevin` are ASE
``MolecularDynamics`` adapters over it for one ``Atoms``.
"""

from integrators.ase_dynamics import (
    ForecastCSVR,
    ForecastDynamics,
    ForecastLangevin,
    ForecastNVE,
)
from integrators.energy_rescale import EnergyRescaler
from integrators.guard import RolloutInstability, StabilityGuard
from integrators.logger import ForecastLogger
from integrators.rollout import ForecastRollout, load_forecaster
from integrators.temperature import TemperatureSchedule
from integrators.thermostats import CSVR, Langevin, Thermostat

__all__ = [
    "CSVR",
    "EnergyRescaler",
    "ForecastCSVR",
    "ForecastDynamics",
    "ForecastLangevin",
    "ForecastLogger",
    "ForecastNVE",
    "ForecastRollout",
    "Langevin",
    "RolloutInstability",
    "StabilityGuard",
    "TemperatureSchedule",
    "Thermostat",
    "load_forecaster",
]
