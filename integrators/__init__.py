"""Large-timestep ASE integrators driven by a trained forecaster (see the forecaster issue)."""
