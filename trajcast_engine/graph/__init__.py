"""The batched atomic graph and its conversion from and to ASE."""

from trajcast_engine.graph.ase_convert import from_arrays, from_atoms, to_atoms
from trajcast_engine.graph.atomic_graph import AtomicGraph

__all__ = ["AtomicGraph", "from_arrays", "from_atoms", "to_atoms"]
