"""A torn tail (a crash during a flush of a format-1 file, written before the commit
protocol) is detected, skipped, refused for append, and cut by ``trajcast repair``; a
file killed before its first flush resumes."""

from __future__ import annotations

import h5py
import mdtraj
import numpy as np
import pytest
from ase.build import bulk

from trajcast_engine.cli import main
from trajcast_engine.trajectory import TrajectoryReader, TrajectoryWriter
from trajcast_engine.trajectory.repair import repair_trajectory


def write_frames(path, atoms, start, count, mode="w"):
    with TrajectoryWriter(path, atoms, mode=mode, flush_frames=5) as writer:
        for k in range(start, start + count):
            atoms.positions[0, 0] = 0.01 * k
            writer.write(atoms.positions, time_fs=10.0 * k, step=k,
                         velocities=np.full((len(atoms), 3), 0.001))  # fmt: skip


def tear_last_block(path, rows=5):
    """What a crash inside a flush could leave before the commit protocol (format 1): the
    last block's rows allocated, their data zero."""
    with h5py.File(path, "r+") as f:
        f["trajcast"].attrs["format_version"] = 1
        for name in ("coordinates", "velocities", "time"):
            f[name][-rows:] = 0
        f["trajcast/time"][-rows:] = 0
        f["trajcast/restart_positions"][-1] = 0


def test_torn_tail_is_detected_refused_and_repaired(tmp_path, capsys):
    atoms = bulk("Cu", cubic=True).repeat(2)
    path = tmp_path / "t.h5"
    write_frames(path, atoms, 0, 15)
    tear_last_block(path)
    with pytest.warns(UserWarning, match="last 5 frames are torn"):
        reader = TrajectoryReader(path)
    assert len(reader) == 10
    reader.close()
    with pytest.raises(ValueError, match=r"last 5 frames are torn.*trajcast repair"):
        TrajectoryWriter(path, atoms, mode="a")
    assert repair_trajectory(path, dry_run=True) == (10, 5)
    assert main(["repair", str(path)]) == 0
    assert "cut 5 incomplete frames; 10 complete frames kept" in capsys.readouterr().out
    traj = mdtraj.load(str(path))
    assert traj.n_frames == 10 and np.allclose(traj.time[-1], 0.09)
    write_frames(path, atoms, 10, 5, mode="a")  # resume after the repair
    traj = mdtraj.load(str(path))
    assert traj.n_frames == 15 and np.allclose(np.diff(traj.time), 0.01)
    assert main(["repair", str(path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_a_file_killed_before_its_first_flush_resumes(tmp_path):
    atoms = bulk("Cu", cubic=True)
    path = tmp_path / "t.h5"
    TrajectoryWriter(path, atoms).close()  # header only: no frame was ever flushed
    with h5py.File(path, "r") as f:
        assert "coordinates" not in f
    write_frames(path, atoms, 0, 3, mode="a")
    assert mdtraj.load(str(path)).n_frames == 3
    with pytest.raises(ValueError, match="cannot append 8 atoms"):
        TrajectoryWriter(tmp_path / "t.h5", bulk("Cu", cubic=True).repeat((2, 1, 1)), mode="a")
