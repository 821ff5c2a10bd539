"""Conversion of any trajectory ASE reads (``.traj``, extxyz, LAMMPS dumps, ...) into
this engine's mdtraj-format HDF5 file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ase.io import iread

from trajcast_engine.trajectory.writer import TrajectoryWriter


def convert_trajectory(
    source: str | os.PathLike,
    target: str | os.PathLike,
    frame_interval_fs: float | None = None,
    *,
    index: str | slice = ":",
    overwrite: bool = False,
    source_format: str | None = None,
    full_precision: bool = True,
) -> int:
    """Copy every frame of ``source`` into the HDF5 file ``target``; returns the count.

    Time comes from each frame's ``info["time_fs"]`` or ``info["time"]`` (fs) when
    present, otherwise from ``frame_interval_fs`` times the frame index; with neither,
    the frame index is written as the time in fs and a warning says so. Velocities and
    energies are copied when the frames carry them. Frames are kept in float64 as well
    (``full_precision``), since converted files usually feed training.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"trajectory file not found: {source}")
    writer = None
    count = 0
    try:
        for k, atoms in enumerate(iread(source, index=index, format=source_format)):
            if writer is None:
                writer = TrajectoryWriter(
                    target,
                    atoms,
                    overwrite=overwrite,
                    full_precision=full_precision,
                    provenance={"converted_from": str(source)},
                )
            elif len(atoms) != len(writer.atoms) or (atoms.numbers != writer.atoms.numbers).any():
                raise ValueError(
                    f"frame {k} of {source} has different atoms from frame 0: one file "
                    "holds one system"
                )
            time_fs = atoms.info.get("time_fs", atoms.info.get("time"))
            if time_fs is None:
                if frame_interval_fs is None and k == 0:
                    warnings.warn(
                        f"{source} stores no time: writing the frame index as time in fs; "
                        "pass frame_interval_fs to set it",
                        stacklevel=2,
                    )
                time_fs = k * (frame_interval_fs or 1.0)
            writer.write_atoms(atoms, time_fs=float(time_fs), step=int(atoms.info.get("step", k)))
            count += 1
    finally:
        if writer is not None:
            writer.close()
    if count == 0:
        raise ValueError(f"{source} holds no frames")
    return count
