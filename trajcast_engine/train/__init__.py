"""Training: fitting the potential (and, later, the forecaster) to reference data."""

from trajcast_engine.train.fit_potential import FitResult, FitSettings, fit_potential

__all__ = ["FitResult", "FitSettings", "fit_potential"]
