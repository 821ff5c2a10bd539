"""Trajectory files survive crashes, refuse bad appends and reject bad input clearly."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import mdtraj as md
import numpy as np
import pytest
from ase.build import bulk, molecule

from trajcast_engine.trajectory import TrajectoryReader, TrajectoryWriter, read_frames


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_file(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    path = tmp_path / "run.h5"
    with TrajectoryWriter(path, atoms) as writer:
        for k in range(3):
            writer.write_atoms(time_fs=10.0 * k, step=k)
    return path, atoms


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        TrajectoryWriter(tmp_path / "nope" / "run.h5", molecule("H2O"))


def test_existing_file_is_not_overwritten_by_default(small_file):
    path, atoms = small_file
    before = digest(path)
    with pytest.raises(FileExistsError, match="overwrite=True.*mode='a'"):
        TrajectoryWriter(path, atoms)
    assert digest(path) == before


def test_not_hdf5_and_not_this_format(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not a trajectory")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        TrajectoryReader(text)
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        TrajectoryWriter(text, molecule("H2O"), mode="a")
    assert text.read_text() == "not a trajectory"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="not an mdtraj-format trajectory"):
        read_frames(other)
    with pytest.raises(FileNotFoundError, match="not found"):
        TrajectoryReader(tmp_path / "absent.h5")


def test_refused_appends_leave_the_file_untouched(small_file):
    path, atoms = small_file
    before = digest(path)
    with pytest.raises(ValueError, match="cannot append 31 atoms.*holds 32 atoms"):
        TrajectoryWriter(path, atoms[:-1], mode="a")
    other = atoms.copy()
    other.symbols[5] = "Ag"
    with pytest.raises(ValueError, match="atom 5 is element Ag here but Z=29"):
        TrajectoryWriter(path, other, mode="a")
    water_box = molecule("H2O")
    water_file = path.parent / "water.h5"
    with TrajectoryWriter(water_file, water_box) as writer:
        writer.write_atoms(time_fs=0.0)
    stretched = water_box.copy()
    stretched.positions[1] += [3.0, 0.0, 0.0]  # an O-H bond broken: another topology
    water_before = digest(water_file)
    with pytest.raises(ValueError, match="topology"):
        TrajectoryWriter(water_file, stretched, mode="a")
    assert digest(path) == before and digest(water_file) == water_before
    with TrajectoryWriter(path, atoms, mode="a") as writer:
        with pytest.raises(ValueError, match="positions of shape"):
            writer.write(np.zeros((3, 3)), time_fs=1.0)
        with pytest.raises(ValueError, match="non-finite"):
            writer.write(np.full((len(atoms), 3), np.nan), time_fs=1.0)
    assert md.load(path).n_frames == 3


def test_flush_by_frame_count_and_by_time(tmp_path):
    atoms = molecule("CH4")
    writer = TrajectoryWriter(tmp_path / "a.h5", atoms, flush_frames=4, flush_seconds=3600)
    for k in range(9):
        writer.write_atoms(time_fs=float(k))
    assert writer.n_frames == 8, "two flushes of four frames"
    writer.close()
    assert writer.closed and md.load(tmp_path / "a.h5").n_frames == 9
    with pytest.raises(ValueError, match="closed"):
        writer.write_atoms(time_fs=10.0)

    timed = TrajectoryWriter(tmp_path / "b.h5", atoms, flush_frames=10_000, flush_seconds=0.2)
    timed.write_atoms(time_fs=0.0)
    assert timed.n_frames == 0
    time.sleep(0.25)
    timed.write_atoms(time_fs=1.0)
    assert timed.n_frames == 2, "flushed because flush_seconds passed"
    timed.close()


def test_interpreter_exit_flushes_buffered_frames(tmp_path):
    path = tmp_path / "exit.h5"
    code = f"""
        from ase.build import molecule
        from trajcast_engine.trajectory import TrajectoryWriter
        writer = TrajectoryWriter({str(path)!r}, molecule("H2O"), flush_frames=1000)
        for k in range(5):
            writer.write_atoms(time_fs=float(k))
        # no close(): normal interpreter exit must still write the frames
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)
    assert md.load(path).n_frames == 5


WRITER = """
import sys, time
import numpy as np
from ase.build import bulk
from trajcast_engine.trajectory import TrajectoryWriter

atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)  # 864 atoms
writer = TrajectoryWriter(sys.argv[1], atoms, flush_frames=7)
base = atoms.positions.copy()
flushed = 0
for k in range(1_000_000):
    time.sleep(0.03)  # the MD step: the run spends its time here, between flushes
    # frame k is recognisable: every coordinate shifted by k * 1e-3 Å
    writer.write(base + k * 1e-3, time_fs=float(k), step=k,
                 velocities=np.full((len(atoms), 3), k * 1e-4))
    if writer.n_frames != flushed:
        flushed = writer.n_frames
        print(flushed, flush=True)
"""


SECOND_WRITERS = """
import sys
from ase.build import bulk
from trajcast_engine.trajectory import TrajectoryInUseError, TrajectoryReader, TrajectoryWriter
from trajcast_engine.trajectory.repair import repair_trajectory

path, atoms = sys.argv[1], bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)
for attempt in (lambda: TrajectoryWriter(path, atoms, mode="a"),
                lambda: TrajectoryWriter(path, atoms, overwrite=True),
                lambda: repair_trajectory(path)):
    try:
        attempt()
        print("opened")
    except TrajectoryInUseError as error:
        print("refused" if "open in another process" in str(error) else error)
with TrajectoryReader(path) as reader:  # what the writer flushed is all there
    print("intact" if len(reader) >= 7 and reader[6].info["step"] == 6 else len(reader))
"""


def test_a_file_being_written_says_so_and_how_to_read_it(tmp_path, monkeypatch):
    """Another process writing the file holds HDF5's lock: readers get one clear line
    naming the way around it, and that way works."""
    path = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "7"  # a first flush is on disk
        with pytest.raises(OSError, match="open for writing by a running simulation"):
            TrajectoryReader(path)
        cli = subprocess.run([sys.executable, "-m", "trajcast_engine.cli", "info", str(path)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert cli.returncode != 0 and cli.stderr.count("\n") == 1  # one line, no traceback
        assert cli.stderr.startswith("trajcast: error: ") and "HDF5_USE_FILE_LOCKING" in cli.stderr
        monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
        code = f"from trajcast_engine.trajectory import read_frames; read_frames({str(path)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        # without the lock a process could open it for writing too: a second writer
        # (resume, overwrite) or a repair is refused all the same, and the file untouched
        done = subprocess.run([sys.executable, "-c", SECOND_WRITERS, str(path)], check=True,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.stdout.split() == ["refused"] * 3 + ["intact"], done.stdout
    finally:
        writer.kill()
        writer.wait()


READER = """
import os, sys, time
import numpy as np
from ase.build import bulk
from trajcast_engine.trajectory import TrajectoryReader

base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6).positions
reads, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with TrajectoryReader(sys.argv[1]) as reader:
        frames = reader[max(0, len(reader) - 14):]
    for atoms in frames:
        k = atoms.info["step"]
        np.testing.assert_allclose(atoms.positions, base + k * 1e-3, atol=2e-5)
    reads += 1
print(reads)
"""


def test_reading_a_live_file_without_the_lock_never_fails(tmp_path, monkeypatch):
    """Without HDF5's lock a reader can catch a flush half-way (about one read in 200
    failed with "addr overflow" before reads were retried on a fresh open); hundreds of
    reads over a few seconds of flushes all succeed and give the frames written."""
    path = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "7"
        monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
        done = subprocess.run([sys.executable, "-c", READER, str(path), "8"], check=True,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        writer.kill()
        writer.wait()
    assert int(done.stdout) > 100


def test_a_failed_read_is_retried_only_without_the_lock(small_file, monkeypatch):
    """A read error is retried on a fresh open when locking is off (a writer may be
    mid-flush); with the lock on no writer can be, and the error is raised at once."""
    path, _ = small_file
    real = h5py.Dataset.__getitem__
    failures = []

    def flaky(self, key):
        if self.name == "/coordinates" and len(failures) < 2:
            failures.append(key)
            raise OSError("Can't synchronously read data (addr overflow)")
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", flaky)
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    with TrajectoryReader(path) as reader:
        assert reader[2].info["step"] == 2
    assert len(failures) == 2
    failures.clear()
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "TRUE")
    with TrajectoryReader(path) as reader, pytest.raises(OSError, match="addr overflow"):
        reader[2]
    assert len(failures) == 1


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_sigkill_leaves_every_flushed_frame_readable(tmp_path, delay):
    kill_writer_and_check(tmp_path / "killed.h5", delay, resume=True)


@pytest.mark.slow
def test_sigkill_at_thirty_random_moments(tmp_path):
    rng = np.random.default_rng(99)
    for k, delay in enumerate(rng.uniform(0.0, 0.15, 30)):
        kill_writer_and_check(tmp_path / f"killed{k}.h5", float(delay), resume=False)


def kill_writer_and_check(path, delay: float, resume: bool) -> None:
    """Kill a simulating process with SIGKILL ``delay`` s after its 2nd flush (during its
    MD steps: 7 steps of 30 ms lie between flushes); check the file."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    reported = []
    try:
        while len(reported) < 2:
            line = proc.stdout.readline()
            assert line, "the writer died before flushing"
            reported.append(int(line))
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    traj = md.load(path)
    n = traj.n_frames
    assert n >= reported[-1], "every frame reported as flushed is in the file"
    assert n % 7 == 0, "only whole flushes are visible"
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6).positions
    expected = (base[None] + 1e-3 * np.arange(n)[:, None, None]) / 10
    np.testing.assert_allclose(traj.xyz, expected, atol=2e-6)  # no partial or zero frame
    np.testing.assert_allclose(traj.time, 1e-3 * np.arange(n), rtol=1e-6)
    with TrajectoryReader(path) as reader:
        assert len(reader) == n
        last = reader[-1]
        assert last.info["step"] == n - 1
        np.testing.assert_array_equal(last.positions, base + (n - 1) * 1e-3)

    if not resume:
        return
    # the killed run resumes: appending continues its numbering
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)
    with TrajectoryWriter(path, atoms, mode="a") as writer:
        assert writer.step_offset == n - 1 and writer.time_offset_fs == n - 1
        writer.write(base, time_fs=float(n), step=n, velocities=np.zeros((len(base), 3)))
    assert md.load(path).n_frames == n + 1
