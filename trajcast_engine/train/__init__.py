"""Training: one loop (``loop.train``) for the potential and the forecaster, their fitting
functions, and YAML configs (``config.load_config``)."""

from trajcast_engine.train.fit_forecaster import (
    ForecastFitResult,
    ForecastFitSettings,
    fit_forecaster,
)
from trajcast_engine.train.fit_potential import FitResult, FitSettings, fit_potential
from trajcast_engine.train.loop import TrainSettings

__all__ = [
    "FitResult",
    "FitSettings",
    "ForecastFitResult",
    "ForecastFitSettings",
    "TrainSettings",
    "fit_forecaster",
    "fit_potential",
]
