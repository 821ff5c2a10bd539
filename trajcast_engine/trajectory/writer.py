"""Trajectory writer in mdtraj's HDF5 format ("Pande" conventions 1.1).

Layout (h5py; every per-frame array is chunked, resizable and carries a ``units``
attribute, so that ``mdtraj.load`` reads it):

==================  ====================  =================================
node                shape, dtype          units
==================  ====================  =================================
/topology           (1,) fixed bytes      mdtraj topology JSON
/coordinates        (F, N, 3) float32     nanometers
/time               (F,) float32          picoseconds
/cell_lengths       (F, 3) float32        nanometers    (periodic systems)
/cell_angles        (F, 3) float32        degrees       (periodic systems)
/velocities         (F, N, 3) float32     nanometers/picosecond
/kineticEnergy      (F,) float32          kilojoules_per_mole
/potentialEnergy    (F,) float32          kilojoules_per_mole
/temperature        (F,) float32          kelvin
/trajcast/...       engine extras that mdtraj ignores: per frame the time (fs), MD
                    step, full cell matrix and float64 energies (eV) and temperature;
                    per flush a float64 restart snapshot of the last frame's positions
                    (Å) and velocities (Å/fs); with ``full_precision=True`` float64
                    positions and velocities of every frame; species, masses, pbc,
                    provenance JSON and the random-generator state
==================  ====================  =================================

Crash safety: frames are kept in memory and written in one block per flush (every
``flush_frames`` frames or ``flush_seconds`` seconds, whichever comes first). No HDF5 call
happens between flushes, and a flush appends its block with the commit protocol of
:mod:`.commit`: chunks are written and indexed before any extent covers them, and
``/coordinates`` (mdtraj's frame count) grows last. A process killed at any moment,
inside a flush included, leaves a file that mdtraj loads with every committed frame and
no partial one; the replay test (every prefix of the writes HDF5 issues, each opened)
and ``benchmarks/trajectory_crash.py`` (random SIGKILLs) check it. Rows of other arrays
beyond ``/coordinates`` (a kill between the protocol's flushes) are invisible and cut on
resume. SWMR mode is not used: after a crash it leaves a status flag that stops
PyTables, hence mdtraj, from opening the file.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms, units
from ase.md.md import MolecularDynamics

from trajcast_engine import __version__
from trajcast_engine.trajectory import units as u
from trajcast_engine.trajectory.commit import append_rows, create_index
from trajcast_engine.trajectory.topology import topology_dict
from trajcast_engine.validation import check_positions

#: 2: appended with the commit protocol (:mod:`.commit`), every stored frame whole
FORMAT_VERSION = 2
EXTRAS = "trajcast"

#: optional per-frame fields: a trajectory has each in every frame or in none
_OPTIONAL = ("velocities", "cell", "potential_energy", "kinetic_energy", "temperature")
#: per-frame scalars: name -> (mdtraj node, scale to file units, units attribute)
MDTRAJ_SCALARS = {
    "time_fs": ("time", u.PS_PER_FS, "picoseconds"),
    "kinetic_energy": ("kineticEnergy", u.KJ_PER_MOL_PER_EV, "kilojoules_per_mole"),
    "potential_energy": ("potentialEnergy", u.KJ_PER_MOL_PER_EV, "kilojoules_per_mole"),
    "temperature": ("temperature", 1.0, "kelvin"),
}
#: per-frame scalars kept at full precision in the extras: name -> (node, dtype, units)
_EXTRA_SCALARS = {
    "time_fs": ("time", "f8", "femtoseconds"),
    "step": ("step", "i8", "steps"),
    "potential_energy": ("potential_energy", "f8", "electronvolt"),
    "kinetic_energy": ("kinetic_energy", "f8", "electronvolt"),
    "temperature": ("temperature", "f8", "kelvin"),
}
#: the most memory one flush block may hold before it is written
_BLOCK_BYTES = 256 * 2**20


class TrajectoryInUseError(OSError):
    """The trajectory file is held open by another process (a running simulation holds
    HDF5's lock on the file it writes)."""


def ensure_not_in_use(path: str | os.PathLike, action: str) -> None:
    """Raise :class:`TrajectoryInUseError` if another process holds ``path`` open through
    HDF5, whatever ``HDF5_USE_FILE_LOCKING`` says in this one: writing to (``action``) a
    file another process writes would corrupt it. HDF5 takes a ``flock`` on every file
    it opens with locking on; an exclusive, non-blocking ``flock`` here fails while any
    such holder is alive. (A writer run with locking off cannot be detected.)"""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: nothing to probe
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise TrajectoryInUseError(
            f"{path} is open in another process (a running simulation writing it, or a "
            f"reader): {action} it when that process ends"
        ) from None
    except OSError:  # a file system without flock
        pass
    finally:
        os.close(fd)


def check_trajectory_file(path: str | os.PathLike, header_only: bool = False) -> None:
    """Raise ``ValueError`` unless ``path`` is an existing trajectory in this format;
    ``header_only=True`` also accepts a trajcast file killed before its first flush."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except BlockingIOError:
        raise TrajectoryInUseError(
            f"{path} is open for writing by a running simulation (HDF5 locks it); read it "
            "when the run ends, or now with HDF5_USE_FILE_LOCKING=FALSE in the environment "
            "(up to the last flushed frame)"
        ) from None
    with f:
        empty = header_only and EXTRAS in f and "species" in f[EXTRAS]
        has_frames = "coordinates" in f or empty
        if f.attrs.get("conventions") not in ("Pande", b"Pande") or not has_frames:
            raise ValueError(
                f"{path} is HDF5 but not an mdtraj-format trajectory (no 'Pande' "
                "conventions attribute or no /coordinates)"
            )


class TrajectoryWriter:
    """Appends MD frames to an mdtraj-readable HDF5 file, buffered and crash-safe.

    Use as an ASE observer (``dyn.attach(writer, interval=k)``: positions, velocities
    and energies are taken from ``atoms``, time from the dynamics), or call
    :meth:`write` with arrays in engine units. Close it (or use ``with``) to write the
    last buffered frames; an interpreter that exits normally closes it too.

    Frames are stored as mdtraj stores them (float32, nm); the last frame of every flush
    is also kept in float64 (Å, Å/fs) so that a run resumes exactly, and
    ``full_precision=True`` keeps every frame in float64 as well (3x the bytes).

    ``compression="gzip"`` compresses the per-atom arrays (positions, velocities) frame by
    frame with shuffle and deflate, which mdtraj reads as it reads its own zlib files.

    ``mode="w"`` creates a file (refusing an existing one unless ``overwrite=True``);
    ``mode="a"`` resumes one, continuing its time and step numbering, and refuses a file
    whose atom count, species or topology differ from ``atoms``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        atoms: Atoms,
        mode: str = "w",
        *,
        overwrite: bool = False,
        dynamics: MolecularDynamics | None = None,
        flush_frames: int = 100,
        flush_seconds: float = 30.0,
        compression: str | None = None,
        full_precision: bool = False,
        bonds: bool = True,
        title: str = "trajcast-engine trajectory",
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' (new file) or 'a' (resume), got {mode!r}")
        if not isinstance(atoms, Atoms):
            raise ValueError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
        if flush_frames < 1 or not flush_seconds > 0:
            raise ValueError("flush_frames must be >= 1 and flush_seconds > 0")
        if compression not in (None, "gzip"):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"directory does not exist: {self.path.parent}")
        check_positions(atoms.positions)
        self.atoms = atoms
        self.dynamics = dynamics
        self.flush_frames = int(flush_frames)
        self.flush_seconds = float(flush_seconds)
        self.compression = compression
        self.full_precision = full_precision
        self._blocks: dict[str, np.ndarray] | None = None  # one flush's frames, file units
        self._count = 0  # frames in the block
        self._last_flush = time.monotonic()
        self._rng_state: str | None = None
        self._warned_time = False  # warned once that no dynamics gives the time
        self._fields: frozenset[str] | None = None  # optional fields every frame carries
        frame_bytes = 12 * max(1, len(atoms)) * (2 + 4 * full_precision)
        self._capacity = int(np.clip(_BLOCK_BYTES // frame_bytes, 1, self.flush_frames))
        self.time_offset_fs = 0.0
        self.step_offset = 0
        self.last_step: int | None = None
        topology = topology_dict(atoms, bonds=bonds)
        if mode == "a" or overwrite:  # a missing file passes the probe
            ensure_not_in_use(self.path, "append to" if mode == "a" else "overwrite")
        if mode == "a":
            from trajcast_engine.trajectory.repair import prepare_for_append

            self._check_resumable(topology)
            prepare_for_append(self.path)
            self._file = open_for_append(self.path)
            coordinates = self._file.get("coordinates")
            self.n_frames = 0 if coordinates is None else int(coordinates.shape[0])
            if self.n_frames:
                extras = self._file[EXTRAS]
                stored = set(extras) | ({"velocities"} if "velocities" in self._file else set())
                self._fields = frozenset(name for name in _OPTIONAL if name in stored)
                self.time_offset_fs = float(extras["time"][-1])
                self.step_offset = self.last_step = int(extras["step"][-1])
        else:
            if self.path.exists() and not overwrite:
                raise FileExistsError(
                    f"{self.path} exists: pass overwrite=True to replace it, or mode='a' "
                    "to append to it"
                )
            with create_file(self.path) as f:
                self._write_header(f, topology, title, provenance or {})
            self._file = open_for_append(self.path)
            self.n_frames = 0
        self._closer = _close_at_exit(self)

    # ---- header and resume checks --------------------------------------------------
    def _write_header(self, f: h5py.File, topology: dict, title: str, provenance: dict) -> None:
        f.attrs["conventions"] = "Pande"
        f.attrs["conventionVersion"] = "1.1"
        f.attrs["program"] = "trajcast-engine"
        f.attrs["programVersion"] = __version__
        f.attrs["title"] = title
        f.attrs["application"] = "trajcast-engine"
        text = json.dumps(topology).encode()
        f.create_dataset("topology", data=np.array([text], dtype=f"S{len(text)}"))
        extras = f.create_group(EXTRAS)
        extras.attrs["format_version"] = FORMAT_VERSION
        extras.attrs["engine_version"] = __version__
        extras.attrs["pbc"] = np.asarray(self.atoms.pbc, dtype=bool)
        extras.attrs["provenance"] = json.dumps(provenance)
        extras.create_dataset("species", data=self.atoms.numbers.astype(np.int64))
        extras.create_dataset("masses", data=self.atoms.get_masses())
        f.flush()

    def _check_resumable(self, topology: dict) -> None:
        """Refuse a file of other atoms; torn files are refused by ``prepare_for_append``."""
        check_trajectory_file(self.path, header_only=True)
        with h5py.File(self.path, "r") as f:
            shape = f["coordinates"].shape if "coordinates" in f else (0, len(f[EXTRAS]["species"]))
            n_file = int(shape[1])
            if n_file != len(self.atoms):
                raise ValueError(
                    f"cannot append {len(self.atoms)} atoms to {self.path}, which holds "
                    f"{n_file} atoms per frame"
                )
            stored = json.loads(f["topology"][0])
            extras = f.get(EXTRAS)
            if extras is None or "species" not in extras:
                raise ValueError(
                    f"cannot append to {self.path}: it was not written by trajcast-engine "
                    "(no /trajcast extras); convert it or start a new file"
                )
            species = extras["species"][()]
        if not np.array_equal(species, self.atoms.numbers):
            k = int(np.flatnonzero(species != self.atoms.numbers)[0])
            raise ValueError(
                f"cannot append to {self.path}: atom {k} is element "
                f"{self.atoms.get_chemical_symbols()[k]} here but Z={species[k]} in the file"
            )
        if stored != topology:
            raise ValueError(
                f"cannot append to {self.path}: its topology (residues, atom names or "
                "bonds) differs from the one inferred for these atoms"
            )

    # ---- frames --------------------------------------------------------------------
    def write(
        self,
        positions: np.ndarray,
        *,
        time_fs: float,
        step: int = 0,
        velocities: np.ndarray | None = None,
        cell: np.ndarray | None = None,
        potential_energy: float | None = None,
        kinetic_energy: float | None = None,
        temperature: float | None = None,
    ) -> None:
        """Buffer one frame. Units: Å, fs, Å/fs, eV, K; ``time_fs`` and ``step`` are
        absolute (not offset by a resumed file's last frame)."""
        self._require_open()
        n = len(self.atoms)
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (n, 3):
            raise ValueError(
                f"frame has positions of shape {positions.shape}, the file holds {n} atoms"
            )
        check_positions(positions)
        if velocities is not None:
            velocities = np.asarray(velocities, dtype=np.float64)
            check_positions(velocities, quantity="velocities")
            if velocities.shape != (n, 3):
                raise ValueError(f"velocities have shape {velocities.shape}, expected {(n, 3)}")
        scalars = {
            "time_fs": float(time_fs),
            "step": int(step),
            "potential_energy": potential_energy,
            "kinetic_energy": kinetic_energy,
            "temperature": temperature,
        }
        given = {**scalars, "velocities": velocities, "cell": cell}
        present = frozenset(name for name in _OPTIONAL if given[name] is not None)
        if self._fields is None:
            self._fields = present
        elif present != self._fields:
            name = sorted(present ^ self._fields)[0]
            frame = self.n_frames + self._count
            if name in self._fields:
                problem = f"lacks {name}, but the trajectory has {name}"
            else:
                problem = f"has {name}, but the trajectory has no {name}"
            raise ValueError(f"frame {frame} {problem} in every frame")
        if self._blocks is None:
            self._blocks = self._allocate_blocks()
        b, k = self._blocks, self._count
        # one pass from engine units into the block, already in the file's units
        np.multiply(positions, u.NM_PER_ANGSTROM, out=b["coordinates"][k], casting="same_kind")
        np.copyto(b["last_positions"][0], positions)
        if velocities is not None:
            scale = u.NM_PER_PS_PER_ANGSTROM_PER_FS
            np.multiply(velocities, scale, out=b["velocities"][k], casting="same_kind")
            np.copyto(b["last_velocities"][0], velocities)
        if self.full_precision:
            b["positions64"][k] = positions
            if velocities is not None:
                b["velocities64"][k] = velocities
        if cell is not None:
            b["cell"][k] = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        for name, value in scalars.items():
            if value is not None:
                b[name][k] = value
        self._count += 1
        self.last_step = scalars["step"]
        if (
            self._count >= self._capacity
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def _allocate_blocks(self) -> dict[str, np.ndarray]:
        cap, n, fields = self._capacity, len(self.atoms), self._fields or frozenset()
        blocks = {"coordinates": np.empty((cap, n, 3), np.float32)}
        blocks["last_positions"] = np.empty((1, n, 3))
        blocks["time_fs"] = np.empty(cap)
        blocks["step"] = np.empty(cap, np.int64)
        if "velocities" in fields:
            blocks["velocities"] = np.empty((cap, n, 3), np.float32)
            blocks["last_velocities"] = np.empty((1, n, 3))
        if self.full_precision:
            blocks["positions64"] = np.empty((cap, n, 3))
            if "velocities" in fields:
                blocks["velocities64"] = np.empty((cap, n, 3))
        if "cell" in fields:
            blocks["cell"] = np.empty((cap, 3, 3))
        for name in ("potential_energy", "kinetic_energy", "temperature"):
            if name in fields:
                blocks[name] = np.empty(cap)
        return blocks

    def write_atoms(
        self,
        atoms: Atoms | None = None,
        time_fs: float = 0.0,
        step: int = 0,
        temperature: float | None = None,
    ) -> None:
        """Buffer a frame from ``atoms`` (default: the writer's own): positions, cell,
        velocities if the atoms carry momenta, energies the calculator already holds.
        ``temperature`` (K) replaces ASE's ``atoms.get_temperature()`` (which counts 3N
        degrees of freedom less those its constraints remove)."""
        atoms = self.atoms if atoms is None else atoms
        has_momenta = atoms.has("momenta")
        kinetic = potential = None
        if has_momenta:
            kinetic = float(atoms.get_kinetic_energy())
            if temperature is None and len(atoms):
                temperature = float(atoms.get_temperature())
        else:
            temperature = None
        if atoms.calc is not None:
            value = atoms.calc.get_property("energy", atoms, allow_calculation=False)
            potential = None if value is None else float(value)
        self.write(
            atoms.positions,
            time_fs=time_fs,
            step=step,
            velocities=atoms.get_velocities() * u.ANGSTROM_PER_FS_PER_ASE_VELOCITY
            if has_momenta
            else None,
            cell=atoms.cell.array if atoms.cell.any() else None,
            potential_energy=potential,
            kinetic_energy=kinetic,
            temperature=temperature,
        )

    def __call__(self) -> None:
        """ASE observer: ``dyn.attach(writer, interval=k)``.

        Time and step come from ``dynamics`` (given to the constructor, or else found as
        the dynamics object calling this observer), offset by a resumed file's last
        frame; a frame whose step equals the last one written is skipped, so that the
        first call of a resumed run does not duplicate the file's last frame.
        """
        dyn = self.dynamics or _calling_dynamics()
        if dyn is None:
            step = self.n_frames + self._count
            time_fs = float(step)
            if not self._warned_time:
                warnings.warn(
                    "TrajectoryWriter could not find the dynamics calling it; time is "
                    "written as the frame index. Pass dynamics=dyn to record MD time.",
                    stacklevel=2,
                )
                self._warned_time = True
        else:
            step = self.step_offset + int(dyn.nsteps)
            time_fs = self.time_offset_fs + float(dyn.get_time()) / units.fs
        if step == self.last_step:
            return
        # a forecaster's dynamics knows its degrees of freedom (conserved momentum and
        # angular momentum carry no heat): record its temperature, not ASE's 3N count
        forecast = dyn is not None and getattr(dyn, "rollout", None) is not None
        temperature = float(dyn.get_temperature()) if forecast else None
        self.write_atoms(self.atoms, time_fs=time_fs, step=step, temperature=temperature)

    def set_rng_state(self, state: dict[str, Any] | str) -> None:
        """Random-generator state (JSON-able) to store with the next flush, for resume."""
        self._rng_state = state if isinstance(state, str) else json.dumps(state)

    # ---- flushing ------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered frames to disk in one block and flush HDF5's caches."""
        self._require_open()
        if self._count:
            if self.n_frames == 0 and "coordinates" not in self._file:
                self._first_block(self._count)
            else:
                self._append_block(self._count)
            self.n_frames += self._count
            self._count = 0
        if self._rng_state is not None:
            self._file[EXTRAS].attrs["rng_state"] = self._rng_state
        self._file.flush()
        self._last_flush = time.monotonic()

    def _first_block(self, count: int) -> None:
        """Create the per-frame arrays with the first block in a copy of the header-only
        file, then rename the copy over it: adding arrays changes the root group's index,
        which HDF5 may write before the new objects it points to, so a kill never sees
        that step half-done (the rename is atomic; a kill before it leaves the header-only
        file and a stray ``.partial`` copy, which the next attempt overwrites)."""
        self._file.close()
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.copyfile(self.path, partial)
        self._file = open_for_append(partial)
        self._create_datasets()
        frames, records = self._block_arrays(count)
        for ds, _ in frames + records:
            create_index(ds)
        append_rows(self._file, frames, self._file["coordinates"], records)
        self._file.close()
        os.replace(partial, self.path)
        self._file = open_for_append(self.path)

    def _create_datasets(self) -> None:
        f, extras = self._file, self._file[EXTRAS]
        n, fields = len(self.atoms), self._fields or frozenset()
        rows = int(np.clip(1_000_000 // (12 * max(1, n)), 1, self._capacity))

        def create(group, name, shape, dtype, unit, chunk_rows=rows):
            options, chunk = {}, (chunk_rows if shape else 1024, *shape)
            if self.compression is not None and shape == (n, 3):
                # one frame per chunk: a compressed chunk is never rewritten (a rewrite
                # changes its size and moves it); scalars are left uncompressed
                options = {"compression": self.compression, "shuffle": True}
                chunk = (1, *shape)
            ds = group.create_dataset(
                name, (0, *shape), dtype, maxshape=(None, *shape), chunks=chunk, **options
            )
            ds.attrs["units"] = unit

        create(f, "coordinates", (n, 3), "f4", "nanometers")
        create(extras, "restart_positions", (n, 3), "f8", "angstrom", chunk_rows=1)
        create(extras, "restart_frame", (), "i8", "frames")
        if "velocities" in fields:
            create(f, "velocities", (n, 3), "f4", "nanometers/picosecond")
            create(extras, "restart_velocities", (n, 3), "f8", "angstrom/femtosecond", 1)
        for name, (node, _, unit) in MDTRAJ_SCALARS.items():
            if name == "time_fs" or name in fields:
                create(f, node, (), "f4", unit)
        for name, (node, dtype, unit) in _EXTRA_SCALARS.items():
            if name in ("time_fs", "step") or name in fields:
                create(extras, node, (), dtype, unit)
        if "cell" in fields:
            create(extras, "cell", (3, 3), "f8", "angstrom")
            if self.atoms.pbc.any() and abs(np.linalg.det(self.atoms.cell.array)) > 0:
                # mdtraj takes a unit cell as periodic in all three directions: give it one
                # only when the cell spans a volume; the exact cell and pbc stay in extras
                create(f, "cell_lengths", (3,), "f4", "nanometers")
                create(f, "cell_angles", (3,), "f4", "degrees")
        if self.full_precision:
            create(extras, "positions", (n, 3), "f8", "angstrom")
            if "velocities" in fields:
                create(extras, "velocities", (n, 3), "f8", "angstrom/femtosecond")

    def _append_block(self, count: int) -> None:
        frames, records = self._block_arrays(count)
        append_rows(self._file, frames, self._file["coordinates"], records)

    def _block_arrays(self, count: int) -> tuple[list, list]:
        """``(per-frame, other)`` lists of ``(dataset, rows to append)`` for the block."""
        f, extras, b = self._file, self._file[EXTRAS], self._blocks
        frames: list[tuple[h5py.Dataset, np.ndarray]] = []
        records: list[tuple[h5py.Dataset, np.ndarray]] = []

        def put(ds: h5py.Dataset, values: np.ndarray, rows: int | None = None) -> None:
            expected = self.n_frames if rows is None else rows
            if ds.shape[0] != expected:  # the file was changed behind our back
                raise RuntimeError(f"{ds.name} has {ds.shape[0]} rows, expected {expected}")
            (frames if rows is None else records).append((ds, values))

        put(f["coordinates"], b["coordinates"][:count])
        if "velocities" in b:
            put(f["velocities"], b["velocities"][:count])
        for name, (node, scale, _) in MDTRAJ_SCALARS.items():
            if node in f:
                put(f[node], (b[name][:count] * scale).astype(np.float32))
        for name, (node, dtype, _) in _EXTRA_SCALARS.items():
            if node in extras:
                put(extras[node], b[name][:count].astype(dtype))
        if "cell" in b:
            put(extras["cell"], b["cell"][:count])
            if "cell_lengths" in f:
                lengths, angles = _cell_parameters(b["cell"][:count])
                put(f["cell_lengths"], (lengths * u.NM_PER_ANGSTROM).astype(np.float32))
                put(f["cell_angles"], angles.astype(np.float32))
        if self.full_precision:
            put(extras["positions"], b["positions64"][:count])
            if "velocities64" in b:
                put(extras["velocities"], b["velocities64"][:count])
        restarts = int(extras["restart_frame"].shape[0])
        put(extras["restart_positions"], b["last_positions"], restarts)
        if "last_velocities" in b:
            put(extras["restart_velocities"], b["last_velocities"], restarts)
        put(extras["restart_frame"], np.array([self.n_frames + count - 1]), restarts)
        return frames, records

    # ---- closing -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return not getattr(self, "_file", None) or not self._file.id.valid

    def _require_open(self) -> None:
        if self.closed:
            raise ValueError(f"the trajectory writer for {self.path} is closed")

    def close(self) -> None:
        """Flush buffered frames and close the file (safe to call twice)."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.n_frames + self._count} frames"
        return f"TrajectoryWriter({str(self.path)!r}, {len(self.atoms)} atoms, {state})"


#: every allocation starts on a 4 KiB boundary: the kernel copies a write() page by page
#: and checks for a fatal signal between pages, so a kill can cut a write short, but
#: never inside one page; aligned, no metadata object smaller than a page is ever torn
_ALIGNMENT = {"alignment_threshold": 1, "alignment_interval": 4096}


def create_file(path: str | os.PathLike) -> h5py.File:
    """A new HDF5 file laid out for crash safety: HDF5's default (version 0) superblock,
    which carries no "open for writing" flag for a crash to leave set (1.10's would stop
    PyTables, hence mdtraj, from opening the file), and page-aligned allocations."""
    return h5py.File(path, "w", **_ALIGNMENT)


def open_for_append(path: str | os.PathLike) -> h5py.File:
    """Open an existing trajectory for appending, creating new arrays in HDF5 1.10's format.

    Arrays created with that format index their chunks with an extensible array, which
    never moves an entry (the 1.8 B-tree splits its nodes: a kill during a split could
    leave an index node pointing past the end of the file). The file keeps the superblock
    it was created with: HDF5 1.10's superblock would carry a "file open for writing" flag
    that, left set by a crash, stops PyTables (hence mdtraj) from opening the file.
    """
    return h5py.File(path, "r+", libver=("v110", "v110"), **_ALIGNMENT)


def _cell_parameters(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (Å) and angles alpha, beta, gamma (degrees) of (F, 3, 3) cells."""
    lengths = np.linalg.norm(cells, axis=2)
    angles = np.empty_like(lengths)
    for k, (a, b) in enumerate([(1, 2), (0, 2), (0, 1)]):
        denom = lengths[:, a] * lengths[:, b]
        cos = np.einsum("fi,fi->f", cells[:, a], cells[:, b]) / np.where(denom > 0, denom, 1)
        angles[:, k] = np.where(denom > 0, np.degrees(np.arccos(np.clip(cos, -1, 1))), 90.0)
    return lengths, angles


def _calling_dynamics() -> MolecularDynamics | None:
    """The ASE dynamics whose ``call_observers`` is running us, if any."""
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, MolecularDynamics):
            return candidate
        frame = frame.f_back
    return None


def _close_at_exit(writer: TrajectoryWriter) -> weakref.finalize:
    """Close ``writer`` when the interpreter exits normally, without keeping it alive."""
    ref = weakref.ref(writer)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)
    return weakref.finalize(writer, atexit.unregister, close)
