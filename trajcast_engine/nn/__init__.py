"""Neural-network building blocks: scatter, radial bases, equivariant layers, models."""

from trajcast_engine.nn.scatter import scatter_backend, scatter_sum

__all__ = ["scatter_backend", "scatter_sum"]
