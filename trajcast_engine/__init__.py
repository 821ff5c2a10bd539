"""trajcast-engine: force-free large-timestep molecular dynamics with equivariant networks."""

__version__ = "0.1.0"
