"""Neighbour lists: a Numba linked-cell list and its Verlet-skin reuse."""

from trajcast_engine.neighbors.cell_list import pair_distances
from trajcast_engine.neighbors.neighbor_list import Pairs, neighbor_list, neighbor_list_atoms
from trajcast_engine.neighbors.verlet import VerletNeighborList

__all__ = ["Pairs", "VerletNeighborList", "neighbor_list", "neighbor_list_atoms", "pair_distances"]
