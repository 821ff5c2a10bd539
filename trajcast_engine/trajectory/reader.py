"""Reading this engine's mdtraj-format HDF5 trajectories back into ASE ``Atoms``.

Frames are read lazily, by index or slice, without loading the whole file. Engine extras
(float64 positions and velocities, exact cells, pbc) are used when present; files written
by other programs in mdtraj's format fall back to its float32 nm/ps datasets.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses, atomic_numbers
from ase.geometry import cellpar_to_cell

from trajcast_engine.trajectory import units as u
from trajcast_engine.trajectory.topology import topology_atom_order
from trajcast_engine.trajectory.writer import (
    EXTRAS,
    MDTRAJ_SCALARS,
    TrajectoryInUseError,
    check_trajectory_file,
)

LIVE_READ_ATTEMPTS = 6  # over about 1.5 s: a flush takes milliseconds


def hdf5_locking_disabled() -> bool:
    """Whether HDF5's file locking is off (``HDF5_USE_FILE_LOCKING`` FALSE, 0 or
    BEST_EFFORT), so that another process may be writing a file this one reads."""
    value = os.environ.get("HDF5_USE_FILE_LOCKING", "").strip().upper()
    return value in ("FALSE", "0", "BEST_EFFORT")


class TrajectoryReader:
    """Random access to the frames of a trajectory file as ``ase.Atoms``.

    ``reader[k]`` gives one frame, ``reader[a:b:c]`` a list; ``len(reader)`` counts the
    complete frames. Each frame carries velocities (when stored), the cell and pbc,
    the potential energy through a ``SinglePointCalculator``, and ``info`` entries
    ``time_fs``, ``step``, ``kinetic_energy`` (eV) and ``temperature`` (K) when stored.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self.n_frames, stored = self._retrying(self._check_and_open, reopen=False)
        if self.n_frames < stored:
            warnings.warn(
                f"{self.path}: the last {stored - self.n_frames} frames are torn (a crash "
                f"during a flush) and are skipped; `trajcast repair {self.path}` cuts them",
                stacklevel=2,
            )

    def _check_and_open(self) -> tuple[int, int]:
        check_trajectory_file(self.path)
        return self._open()

    def _open(self) -> tuple[int, int]:
        """(Re)open the file, read topology, species, masses and pbc; return the
        ``(consistent, stored)`` frame counts (see
        :func:`~trajcast_engine.trajectory.repair.consistent_frames`)."""
        if self._file is not None:
            self._file.close()
        self._file = f = h5py.File(self.path, "r")
        self.topology: dict = json.loads(f["topology"][0])
        self._extras = f.get(EXTRAS)
        ex = self._extras
        if ex is not None and "species" in ex:
            self.numbers = ex["species"][()].astype(int)
            self.masses = ex["masses"][()]
            self.pbc = np.asarray(ex.attrs["pbc"], dtype=bool)
        else:
            self.numbers = np.array([atomic_numbers[s] for s in topology_atom_order(self.topology)])
            self.masses = atomic_masses[self.numbers]
            self.pbc = np.full(3, "cell_lengths" in f)
        # the writer never exposes a torn frame; files from older versions could hold one
        from trajcast_engine.trajectory.repair import consistent_frames

        return consistent_frames(f)

    def _retrying(self, action: Callable[[], Any], reopen: bool = True) -> Any:
        """Run ``action`` on the open file. With HDF5's file locking switched off (the
        documented way to read a file that a running simulation is writing) a read can
        take the file's end from before a flush and a dataset's index from after it
        ("addr overflow"); the file is then reopened, which sees a finished flush, and
        the read tried again. Frames already counted never change, so the retry reads
        the same data; the frame count stays the one taken at the first open.
        ``reopen=False`` for an action that opens the file itself."""
        attempts = LIVE_READ_ATTEMPTS if hdf5_locking_disabled() else 1
        for attempt in range(attempts):
            try:
                if attempt and reopen:
                    self._open()
                return action()
            except (FileNotFoundError, TrajectoryInUseError):  # final: no retry helps
                raise
            except OSError as error:
                if attempt == attempts - 1:
                    if attempts == 1:
                        raise
                    raise OSError(
                        f"{self.path}: no consistent read in {attempts} attempts while "
                        f"another process writes the file: {error}"
                    ) from error
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def __len__(self) -> int:
        return self.n_frames

    @property
    def provenance(self) -> dict[str, Any]:
        """Model and run provenance recorded by the writer."""
        if self._extras is None:
            return {}
        return json.loads(self._extras.attrs.get("provenance", "{}"))

    @property
    def rng_state(self) -> str | None:
        """The random-generator state stored at the last flush, if any."""
        if self._extras is None:
            return None
        value = self._extras.attrs.get("rng_state")
        return None if value is None else str(value)

    def times_fs(self, rows: slice = slice(None)) -> np.ndarray:
        """Time in fs of the frames ``rows`` (default all)."""
        return self._retrying(lambda: self._times_fs(rows))

    def _times_fs(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.n_frames)
        rows = slice(start, stop, step)
        ex = self._extras
        if ex is not None and "time" in ex:
            return ex["time"][rows]
        node, scale, _ = MDTRAJ_SCALARS["time_fs"]
        if node in self._file:
            return self._file[node][rows].astype(np.float64) / scale
        return np.arange(self.n_frames, dtype=np.float64)[rows]

    def _rows(self, name: str, rows: slice | np.ndarray, extra: bool = False):
        group = self._extras if extra else self._file
        if group is None or name not in group:
            return None
        return group[name][rows]

    def read(self, rows: slice) -> list[Atoms]:
        """Frames ``rows`` (a slice over complete frames) as ``Atoms``."""
        return self._retrying(lambda: self._read(rows))

    def _read(self, rows: slice) -> list[Atoms]:
        wanted = range(*rows.indices(self.n_frames))
        n = len(wanted)
        if n == 0:
            return []
        if wanted.step < 0:  # h5py reads ascending slices only
            return self._read(slice(wanted[-1], wanted[0] + 1, -wanted.step))[::-1]
        rows = slice(wanted.start, wanted.stop, wanted.step)
        f = self._file
        positions = self._rows("positions", rows, extra=True)
        if positions is None:
            positions = f["coordinates"][rows].astype(np.float64) / u.NM_PER_ANGSTROM
        velocities = self._rows("velocities", rows, extra=True)
        if velocities is None and "velocities" in f:
            velocities = f["velocities"][rows].astype(np.float64) / u.NM_PER_PS_PER_ANGSTROM_PER_FS
        self._patch_with_restarts(wanted, positions, velocities)
        cells = self._rows("cell", rows, extra=True)
        if cells is None and "cell_lengths" in f:
            lengths = f["cell_lengths"][rows].astype(np.float64) / u.NM_PER_ANGSTROM
            angles = f["cell_angles"][rows].astype(np.float64)
            cells = np.stack(
                [cellpar_to_cell(np.r_[a, b]) for a, b in zip(lengths, angles, strict=True)]
            )
        steps = self._rows("step", rows, extra=True)
        times = self._times_fs(rows)
        scalars = {}  # float64 extras in eV and K, else mdtraj's float32 kJ/mol and K
        for key, (node, scale, _) in MDTRAJ_SCALARS.items():
            if key == "time_fs":
                continue
            values = self._rows(key, rows, extra=True)
            if values is None and node in f:
                values = f[node][rows].astype(np.float64) / scale
            scalars[key] = values
        frames = []
        for k in range(n):
            atoms = Atoms(
                numbers=self.numbers,
                positions=positions[k],
                cell=None if cells is None else cells[k],
                pbc=self.pbc,
                masses=self.masses,
            )
            if velocities is not None:
                atoms.set_velocities(velocities[k] / units.fs)
            atoms.info["time_fs"] = float(times[k])
            if steps is not None:
                atoms.info["step"] = int(steps[k])
            for key in ("kinetic_energy", "temperature"):
                if scalars[key] is not None:
                    atoms.info[key] = float(scalars[key][k])
            if scalars["potential_energy"] is not None:
                energy = float(scalars["potential_energy"][k])
                atoms.calc = SinglePointCalculator(atoms, energy=energy)
            frames.append(atoms)
        return frames

    def _patch_with_restarts(self, wanted: range, positions, velocities) -> None:
        """Put the float64 restart snapshots (the last frame of each flush) in place of
        float32 data for the frames that have one."""
        ex = self._extras
        if ex is None or "restart_frame" not in ex or "positions" in ex:
            return
        restart_frames = ex["restart_frame"][()]
        for row, frame in enumerate(restart_frames):
            if frame in wanted:
                k = wanted.index(frame)
                positions[k] = ex["restart_positions"][row]
                if velocities is not None and "restart_velocities" in ex:
                    velocities[k] = ex["restart_velocities"][row]

    def __getitem__(self, index: int | slice) -> Atoms | list[Atoms]:
        if isinstance(index, slice):
            return self.read(index)
        k = int(index)
        if not -self.n_frames <= k < self.n_frames:
            raise IndexError(f"frame {index} out of range for {self.n_frames} frames")
        k %= self.n_frames
        return self.read(slice(k, k + 1))[0]

    def __iter__(self) -> Iterator[Atoms]:
        block = 100
        for start in range(0, self.n_frames, block):
            yield from self.read(slice(start, min(start + block, self.n_frames)))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> TrajectoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(path: str | os.PathLike, index: int | slice = slice(None)) -> Atoms | list[Atoms]:
    """Read frame(s) of a trajectory file: ``read_frames("run.h5", -1)`` is the last."""
    with TrajectoryReader(path) as reader:
        return reader[index]
