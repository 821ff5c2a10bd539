"""A kill at any moment of a flush leaves a file that mdtraj loads with no partial frame.

The writer's HDF5 file is redirected to an in-memory file object that records every write
HDF5 issues. For each flush, every prefix of its writes is replayed onto the file as it was
before the flush (what a SIGKILL after that write leaves: writes that returned are in
the page cache) and the result is opened with h5py, mdtraj and the engine's reader; a
sample of them is resumed too.
"""

from __future__ import annotations

import io
import warnings

import h5py
import mdtraj
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from trajcast_engine.trajectory import TrajectoryReader, TrajectoryWriter
from trajcast_engine.trajectory import writer as writer_module
from trajcast_engine.trajectory.repair import interrupted, repair_trajectory


class RecordingFile(io.RawIOBase):
    """A file in memory that logs each write as ``(offset, bytes)``."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.pos = 0
        self.log: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = [offset, self.pos + offset, len(self.data) + offset][whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), len(self.data) - self.pos))
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def write(self, chunk) -> int:
        chunk = bytes(chunk)
        self.log.append((self.pos, chunk))
        if self.pos > len(self.data):
            self.data.extend(bytes(self.pos - len(self.data)))
        self.data[self.pos : self.pos + len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        self.log.append((size, b""))  # HDF5 truncates to its end-of-file address
        del self.data[size:]
        self.data.extend(bytes(size - len(self.data)))
        return size


def replay(base: bytes, writes: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(base)
    for offset, chunk in writes:
        if not chunk:
            del data[offset:]
            data.extend(bytes(offset - len(data)))
        else:
            if offset > len(data):
                data.extend(bytes(offset - len(data)))
            data[offset : offset + len(chunk)] = chunk
    return bytes(data)


SYSTEMS = {
    "orthorhombic": (lambda: bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1)), {}),
    "gzip": (lambda: bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1)),
             {"compression": "gzip"}),
    "triclinic, float64 copies": (lambda: bulk("Cu", "fcc", a=3.61), {"full_precision": True}),
    "molecule in vacuum": (lambda: molecule("CH3CH2OH"), {}),
}  # fmt: skip
#: frames per flush: uneven, so that flushes start and end inside chunks of 4 rows
BLOCKS = [4, 3, 1, 6, 4, 2, 9]


def expected_positions(atoms: Atoms, k: int) -> np.ndarray:
    return atoms.positions + 0.01 * k


def write_frame(writer: TrajectoryWriter, atoms: Atoms, k: int) -> None:
    """Frame ``k`` with every optional field, recognisable from its positions and time."""
    writer.write(
        expected_positions(atoms, k), time_fs=5.0 * k, step=k,
        velocities=atoms.get_velocities() * 0.1, potential_energy=-float(k),
        kinetic_energy=0.5, temperature=300.0 + k,
        cell=atoms.cell.array if atoms.cell.any() else None,
    )  # fmt: skip


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_every_state_a_kill_can_leave_is_readable_and_whole(tmp_path, monkeypatch, system):
    build, options = SYSTEMS[system]
    atoms = build()
    atoms.set_velocities(np.full((len(atoms), 3), 0.01))
    recorder: dict[str, RecordingFile] = {}

    def open_recorded(path):
        """The real file until the first block is in (made in a copy renamed over the
        header-only file: atomic), then the file in memory."""
        with h5py.File(path, "r") as f:
            first_block_in = "coordinates" in f
        if not first_block_in or path.name != "run.h5":
            return real_open(path)
        recorder["file"] = RecordingFile(path.read_bytes())
        return h5py.File(
            recorder["file"], "r+", libver=("v110", "v110"), **writer_module._ALIGNMENT
        )

    real_open = writer_module.open_for_append
    monkeypatch.setattr(writer_module, "open_for_append", open_recorded)
    writer = TrajectoryWriter(tmp_path / "run.h5", atoms, flush_frames=4, **options)
    committed, k, states, mid_flush = 0, 0, 0, 0
    for block, count in enumerate(BLOCKS):
        rec = recorder.get("file", RecordingFile(b""))
        base, rec.log = bytes(rec.data), []
        for _ in range(count):
            write_frame(writer, atoms, k)
            k += 1
        writer.set_rng_state({"block": block, "state": list(range(block))})
        writer.flush()
        if block == 0:  # the first block: see open_recorded
            committed = k
            continue
        assert len(rec.log) > 3
        for j in range(len(rec.log) + 1):
            path = tmp_path / f"state_{block}_{j}.h5"
            path.write_bytes(replay(base, rec.log[:j]))
            visible = check_state(path, atoms, committed, k)
            states += 1
            mid_flush += interrupted(path)
            if j % 5 == 2 and visible:  # a sample of states resumes and appends
                check_resume(path, atoms, committed, visible)
            path.unlink()
        committed = k
    writer.close()
    assert states > 60 and mid_flush > 10  # most states lie inside a flush
    assert not list(tmp_path.glob("*.partial"))


def check_state(path, atoms: Atoms, committed: int, written: int) -> int:
    """Every frame any reader sees is whole; all committed frames are there."""
    with h5py.File(path, "r") as f:
        if "coordinates" not in f:
            assert committed == 0
            return 0
        n = f["coordinates"].shape[0]
        xyz = f["coordinates"][()]
    assert committed <= n <= written
    for k in range(n):
        np.testing.assert_allclose(xyz[k], expected_positions(atoms, k) / 10, atol=1e-6)
    if n == 0:
        return 0
    traj = mdtraj.load(str(path))
    assert traj.n_frames == n
    np.testing.assert_allclose(traj.time, 0.005 * np.arange(n), atol=1e-6)
    np.testing.assert_allclose(traj.xyz[-1], expected_positions(atoms, n - 1) / 10, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "torn frames" warning
        with TrajectoryReader(path) as reader:
            assert len(reader) == n
            last = reader[n - 1]
    np.testing.assert_allclose(last.positions, expected_positions(atoms, n - 1), atol=1e-12)
    return n


def check_resume(path, atoms: Atoms, committed: int, visible: int) -> None:
    """Resuming goes back to the last complete flush (frames of a block the kill cut
    short have no restart record; the run writes them again) and appends after it."""
    with TrajectoryWriter(path, atoms, mode="a") as writer:
        n = writer.n_frames
        assert committed <= n <= visible
        write_frame(writer, atoms, n)
    traj = mdtraj.load(str(path))
    assert traj.n_frames == n + 1
    np.testing.assert_allclose(traj.time, 0.005 * np.arange(n + 1), atol=1e-6)
    np.testing.assert_allclose(traj.xyz[n], expected_positions(atoms, n) / 10, atol=1e-6)
    assert not list(path.parent.glob("*.partial"))


def test_repair_rewrites_a_file_left_inside_a_flush(tmp_path):
    """`trajcast repair` on a file killed inside a flush keeps every frame and leaves a
    file whose length matches its superblock again; a clean file is left alone."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    path = tmp_path / "run.h5"
    with TrajectoryWriter(path, atoms, flush_frames=3) as writer:
        for k in range(7):
            writer.write(expected_positions(atoms, k), time_fs=5.0 * k, step=k)
    assert not interrupted(path)
    before = path.stat().st_mtime_ns
    assert repair_trajectory(path) == (7, 0)
    assert path.stat().st_mtime_ns == before
    with open(path, "ab") as handle:  # what the raw writes of a killed round leave
        handle.write(bytes(4096))
    assert interrupted(path)
    assert repair_trajectory(path) == (7, 0)
    assert not interrupted(path)
    traj = mdtraj.load(str(path))
    assert traj.n_frames == 7
    np.testing.assert_allclose(traj.xyz[6], expected_positions(atoms, 6) / 10, atol=1e-6)
