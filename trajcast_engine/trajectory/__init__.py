"""mdtraj-compatible HDF5 trajectories: writer (also an ASE observer), reader, conversion."""

from trajcast_engine.trajectory.convert import convert_trajectory
from trajcast_engine.trajectory.reader import TrajectoryReader, read_frames
from trajcast_engine.trajectory.topology import topology_dict
from trajcast_engine.trajectory.writer import (
    TrajectoryInUseError,
    TrajectoryWriter,
    check_trajectory_file,
)

__all__ = [
    "TrajectoryInUseError",
    "TrajectoryReader",
    "TrajectoryWriter",
    "check_trajectory_file",
    "convert_trajectory",
    "read_frames",
    "topology_dict",
]
