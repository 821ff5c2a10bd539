"""Detect and cut frames that a crash left incomplete.

The writer's commit protocol (:mod:`.commit`) never exposes a torn row, but a kill in the
middle of a flush can leave per-frame arrays longer than ``/coordinates``: rows not yet
committed, invisible to mdtraj (which counts frames by ``/coordinates``) and to the
reader. Files written before that protocol (or by other tools) could hold a torn last
block, its rows allocated but read back as zeros. Every flush stores its last frame in
float64 (``restart_positions``) with its index (``restart_frame``); a flush is complete
when that snapshot matches its own float32 frame in ``/coordinates`` and the time is
non-decreasing there. The consistent part of a file ends after the last complete flush
(or, for files without restart records, after the shortest per-frame dataset).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from trajcast_engine.trajectory import units as u
from trajcast_engine.trajectory.writer import (
    EXTRAS,
    FORMAT_VERSION,
    MDTRAJ_SCALARS,
    check_trajectory_file,
    create_file,
    ensure_not_in_use,
    open_for_append,
)

_RESTART = ("restart_positions", "restart_velocities", "restart_frame")


def _per_frame(f: h5py.File) -> list[h5py.Dataset]:
    """The datasets with one row per frame: mdtraj's and the engine's extras."""
    names = ["coordinates", "velocities", "cell_lengths", "cell_angles"]
    names += [node for node, _, _ in MDTRAJ_SCALARS.values()]
    found = [f[n] for n in names if n in f]
    extras = f.get(EXTRAS)
    if extras is not None:
        found += [
            ds
            for name, ds in extras.items()
            if isinstance(ds, h5py.Dataset) and name not in (*_RESTART, "species", "masses")
        ]
    return found


def consistent_frames(f: h5py.File) -> tuple[int, int]:
    """``(consistent, stored)`` frame counts of an open trajectory file: the frames no
    crash can have torn, and the rows every per-frame dataset holds (what mdtraj shows;
    longer arrays hold uncommitted rows). Files of format 2 on are written with the commit
    protocol (all stored frames are whole); older ones are checked up to their last
    complete flush."""
    stored = _stored(f)
    if _format_version(f) >= 2:
        return stored, stored
    return last_flush_end(f), stored


def last_flush_end(f: h5py.File) -> int:
    """Frames up to the end of the last flush whose restart record is stored and matches
    its own frame (all stored frames for a file without restart records)."""
    stored = _stored(f)
    extras = f.get(EXTRAS)
    if extras is None or "restart_frame" not in extras or stored == 0:
        return stored
    frames = extras["restart_frame"][()]
    snapshots = extras["restart_positions"]
    times = f.get("time")
    for row in range(min(len(frames), snapshots.shape[0]) - 1, -1, -1):
        frame = int(frames[row])
        if not 0 <= frame < stored:
            continue
        snapshot = snapshots[row]
        written = f["coordinates"][frame].astype(np.float64) / u.NM_PER_ANGSTROM
        scale = max(1.0, float(np.abs(snapshot).max()))
        matches = np.allclose(written, snapshot, rtol=0, atol=1e-5 * scale)
        blank = snapshot.shape[0] > 1 and not np.any(snapshot)
        ordered = times is None or frame == 0 or times[frame] >= times[frame - 1]
        if matches and not blank and ordered:
            return frame + 1
    return 0


def _stored(f: h5py.File) -> int:
    return min((ds.shape[0] for ds in _per_frame(f)), default=0) if "coordinates" in f else 0


def _longest(f: h5py.File) -> int:
    return max((ds.shape[0] for ds in _per_frame(f)), default=0)


def _restart_rows(f: h5py.File, keep: int) -> int:
    """Restart records that belong to the first ``keep`` frames."""
    extras = f.get(EXTRAS)
    if extras is None or "restart_frame" not in extras:
        return 0
    return int(np.sum(extras["restart_frame"][()] < keep))


def _tidy(f: h5py.File, keep: int) -> bool:
    """Whether every per-frame array holds ``keep`` rows and every restart array the
    records of those frames (nothing a kill left half-appended)."""
    extras, rows = f.get(EXTRAS), _restart_rows(f, keep)
    records = [extras[n] for n in _RESTART if extras is not None and n in extras]
    return all(ds.shape[0] == keep for ds in _per_frame(f)) and all(
        ds.shape[0] == rows for ds in records
    )


def _format_version(f: h5py.File) -> int:
    extras = f.get(EXTRAS)
    return 0 if extras is None else int(extras.attrs.get("format_version", 0))


def end_of_allocation(path: str | os.PathLike) -> int | None:
    """The end-of-file address HDF5 last recorded in the superblock of ``path`` (bytes),
    or ``None`` for a superblock layout this does not know. After every completed flush
    HDF5 sets the file's length to it; a file of another length was killed during a flush.
    Layout: HDF5 File Format Specification 3.0, §II.A (versions 0-1: base address, free
    space, end-of-file address after 24 or 28 bytes; versions 2-3: after 12 bytes)."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if len(head) < 48 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return None
    version = head[8]
    if version in (0, 1):
        size, at = head[13], 24 + (4 if version == 1 else 0)
        fields = [int.from_bytes(head[at + k * size : at + (k + 1) * size], "little")
                  for k in range(3)]  # fmt: skip
        return fields[0] + fields[2]  # base address + end-of-file address
    if version in (2, 3):
        size = head[9]
        base = int.from_bytes(head[12 : 12 + size], "little")
        return base + int.from_bytes(head[12 + 2 * size : 12 + 3 * size], "little")
    return None


def interrupted(path: str | os.PathLike) -> bool:
    """Whether ``path`` was left in the middle of a flush (its chunk index may then name
    chunks past the recorded end of the file: readable, but not safe to append to)."""
    end = end_of_allocation(path)
    return end is not None and os.path.getsize(path) != end


def rewrite_frames(path: str | os.PathLike, keep: int) -> None:
    """Rewrite ``path`` with its first ``keep`` frames, into a copy renamed over it.

    Only rows a reader can see are read, so chunks that an interrupted flush indexed
    beyond them are left behind with the old file. Attributes, the topology, the extras
    and the restart records of kept frames are carried over unchanged.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with create_file(partial):  # laid out as the writer lays out a new file
        pass
    with h5py.File(path, "r") as source, open_for_append(partial) as target:
        per_frame = {ds.name for ds in _per_frame(source)}
        restart_rows = _restart_rows(source, keep)

        def copy(name: str, node: h5py.HLObject) -> None:
            if isinstance(node, h5py.Group):
                group = target.require_group(name)
                group.attrs.update(node.attrs)
                return
            rows = node.shape[0] if node.shape else None
            if node.name in per_frame:
                rows = keep
            elif node.parent.name == f"/{EXTRAS}" and name.split("/")[-1] in _RESTART:
                rows = restart_rows
            if node.chunks is None:
                target.create_dataset(name, data=node[()])
            else:
                # as the writer lays them out: compressed per-atom arrays one frame per
                # chunk (never rewritten), everything else uncompressed
                chunks, options = node.chunks, {}
                if node.compression is not None and node.ndim == 3:
                    chunks = (1, *node.shape[1:])
                    options = {"compression": node.compression, "shuffle": True,
                               "compression_opts": node.compression_opts}  # fmt: skip
                target.create_dataset(
                    name, (rows, *node.shape[1:]), node.dtype, chunks=chunks,
                    maxshape=node.maxshape, **options,
                )  # fmt: skip
                step = max(1, chunks[0]) * 64
                for start in range(0, rows, step):
                    stop = min(rows, start + step)
                    target[name][start:stop] = node[start:stop]
            target[name].attrs.update(node.attrs)

        target.attrs.update(source.attrs)
        source.visititems(copy)
    os.replace(partial, path)


def repair_trajectory(path: str | os.PathLike, dry_run: bool = False) -> tuple[int, int]:
    """Cut ``path`` back to its consistent frames; returns ``(kept, dropped)``, counting
    uncommitted rows as dropped. A file left in the middle of a flush is rewritten even
    when no frame is dropped. With ``dry_run`` nothing is changed."""
    path = Path(path)
    check_trajectory_file(path, header_only=True)
    if not dry_run:
        ensure_not_in_use(path, "repair")
    with h5py.File(path, "r") as f:
        keep, _ = consistent_frames(f)
        longest, tidy = _longest(f), _tidy(f, keep)
    if not dry_run and (not tidy or interrupted(path)):
        rewrite_frames(path, keep)
    return keep, longest - keep


def prepare_for_append(path: str | os.PathLike) -> None:
    """Make a trajectory safe to append to after any crash: keep the frames up to its last
    complete flush (the frames after it, of a block a kill interrupted, have no restart
    record: the resumed run writes them again from the record before), drop uncommitted
    rows, and rewrite a file left in the middle of a flush. Refuses torn files."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        consistent, stored = consistent_frames(f)
        if consistent < stored:
            raise ValueError(
                f"cannot append to {path}: its last {stored - consistent} frames "
                "are torn (a crash during a flush); run `trajcast repair "
                f"{path}` to cut them, then resume"
            )
        keep = last_flush_end(f)
        tidy = _tidy(f, keep)
        old_format = _format_version(f) < FORMAT_VERSION
    if not tidy or interrupted(path) or old_format:
        rewrite_frames(path, keep)  # an old file's chunks laid out for the commit protocol
    if old_format:
        with h5py.File(path, "r+") as f:
            f[EXTRAS].attrs["format_version"] = FORMAT_VERSION
