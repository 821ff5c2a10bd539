"""Training pairs for the forecaster: (state at t, displacement and velocity at t + Δt).

From each trajectory (this engine's HDF5, or any file ASE reads: .traj, extxyz, LAMMPS
dumps) with frames every ``δ`` fs, a pair joins frame ``k`` to frame ``k + Δt/δ``:

    input:   species, r(t), v(t), cell, pbc
    targets: Δr = r(t + Δt) - r(t)  (minimum image in the cell at t: an atom wrapped
             back into the cell between the frames still moves by its true, short step),
             v' = v(t + Δt)

Time-reversal augmentation adds the reversed pair ``(r(t+Δt), -v(t+Δt)) -> (-Δr, -v(t))``,
exact for Hamiltonian dynamics (Thiemann et al., arXiv 2503.23794). Splits are by
trajectory, so no validation frame neighbours a training frame in time. Units: Å, fs,
Å/fs.

With ``rollout_steps = K > 1`` a pair also carries the reference K - 1 strides further:
``r(t + jΔt) - r(t)`` (the sum of the minimum-image steps) and ``v(t + jΔt)`` for
j = 2..K, the targets of a loss over K chained forecasts (:mod:`trajcast_engine.train.
fit_forecaster`); start frames without K strides ahead of them are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units

from trajcast_engine.graph import AtomicGraph, from_atoms


@dataclass
class TrainingPair:
    """One forecaster example: the state at t (a graph with velocities, no edges) and
    the targets at t + Δt."""

    graph: AtomicGraph
    displacements: torch.Tensor  # (N, 3) Å
    velocities: torch.Tensor  # (N, 3) Å/fs
    trajectory: int
    # (K - 1, N, 3): r(t + jΔt) - r(t) and v(t + jΔt) for j = 2..K (rollout_steps K > 1)
    later_displacements: torch.Tensor | None = None
    later_velocities: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        """Strides of reference this pair holds (1 + the later ones)."""
        return 1 if self.later_displacements is None else 1 + len(self.later_displacements)


def load_trajectory(
    source: str | os.PathLike,
    frame_interval_fs: float | None = None,
    lammps_types: Sequence[str | int] | None = None,
):
    """Frames of one trajectory as ``Atoms`` with velocities and ``info['time_fs']``.

    HDF5 files of this engine carry their times; for other formats give
    ``frame_interval_fs`` (the time between stored frames; for a LAMMPS dump, between its
    first two frames, the rest placed by their TIMESTEP values). A LAMMPS text dump
    names its elements in an ``element`` column, or ``lammps_types`` gives the element of
    type 1, 2, ... (symbols or atomic numbers); LAMMPS ``metal`` units (Å, Å/ps) as ASE
    reads them."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory not found: {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):
        from trajcast_engine.trajectory import TrajectoryReader

        with TrajectoryReader(path) as reader:
            frames = reader[:]
    else:
        from ase.io import read

        frames = read(path, index=":")
        if frame_interval_fs is None:
            raise ValueError(
                f"{path} does not store times: pass frame_interval_fs (fs between frames)"
            )
        times = [k * float(frame_interval_fs) for k in range(len(frames))]
        if _is_lammps_dump(path):
            _set_lammps_species(frames, path, lammps_types)
            steps = [a.info.get("timestep") for a in frames]
            if len(frames) > 1 and None not in steps and steps[1] != steps[0]:
                unit = float(frame_interval_fs) / (steps[1] - steps[0])  # fs per MD step
                times = [(step - steps[0]) * unit for step in steps]
        for atoms, time_fs in zip(frames, times, strict=True):
            atoms.info["time_fs"] = time_fs
    if not frames:
        raise ValueError(f"{path} holds no frames")
    missing = [k for k, a in enumerate(frames) if not a.has("momenta")]
    if missing:
        raise ValueError(f"{path}: frame {missing[0]} has no velocities; a forecaster needs them")
    species = frames[0].numbers
    for k, atoms in enumerate(frames):
        if not np.array_equal(atoms.numbers, species):
            raise ValueError(
                f"{path}: frame {k} has a different species order from frame 0; every frame "
                "of a trajectory must list the same atoms in the same order"
            )
    return frames


def _is_lammps_dump(path: Path) -> bool:
    from ase.io.formats import filetype

    try:
        return filetype(str(path)).startswith("lammps-dump")
    except Exception:  # ASE raises several types for formats it cannot name
        return False


def _set_lammps_species(
    frames: Sequence[Atoms], path: Path, lammps_types: Sequence[str | int] | None
) -> None:
    """Atomic numbers of a LAMMPS dump's atoms from ``lammps_types`` (type k is entry
    k - 1); without it the dump must have had an ``element`` column."""
    from ase.data import atomic_numbers

    if lammps_types is None:
        with open(path, errors="replace") as handle:
            header = next((line for line in handle if line.startswith("ITEM: ATOMS")), "")
        if "element" not in header.split():
            raise ValueError(
                f"{path} is a LAMMPS dump of atom types, not elements: give lammps_types (the "
                "element of type 1, 2, ..., e.g. [Cu] or data.lammps_types in a training "
                "config) or dump an 'element' column"
            )
        return
    numbers = []
    for entry in lammps_types:
        number = atomic_numbers.get(entry) if isinstance(entry, str) else int(entry)
        if number is None or not 0 < number < 119:
            raise ValueError(f"lammps_types: {entry!r} is not an element")
        numbers.append(number)
    for atoms in frames:
        types = atoms.arrays["type"]
        if types.min() < 1 or types.max() > len(numbers):
            raise ValueError(
                f"{path} has atom types {sorted(set(types.tolist()))} but lammps_types names "
                f"{len(numbers)}"
            )
        velocities = atoms.get_velocities()  # ASE stored momenta with the types' masses
        atoms.numbers = np.asarray(numbers)[types - 1]
        atoms.set_velocities(velocities)


def minimum_image(delta: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Displacements mapped to their shortest periodic image along periodic axes."""
    if not pbc.any():
        return delta
    fractional = np.linalg.solve(cell.T, delta.T).T
    fractional[:, pbc] -= np.round(fractional[:, pbc])
    return fractional @ cell


def frame_offset(frames: Sequence[Atoms], timestep_fs: float, name: str) -> tuple[int, int]:
    """``(frames per Δt, frames)``; errors for uneven spacing or too short a trajectory."""
    times = np.array([a.info["time_fs"] for a in frames], dtype=np.float64)
    if len(times) < 2:
        raise ValueError(f"{name} has {len(times)} frame: a pair needs two")
    spacing = np.diff(times)
    if not np.allclose(spacing, spacing[0], rtol=1e-6, atol=1e-6) or spacing[0] <= 0:
        raise ValueError(f"{name}: frames are not evenly spaced in time")
    ratio = timestep_fs / spacing[0]
    offset = int(round(ratio))
    if offset < 1 or abs(ratio - offset) > 1e-6:
        raise ValueError(
            f"{name}: the stride {timestep_fs:g} fs is not a whole number of frame spacings "
            f"({spacing[0]:g} fs)"
        )
    if offset >= len(frames):
        raise ValueError(
            f"{name}: the stride {timestep_fs:g} fs ({offset} frames) is longer than the "
            f"trajectory ({len(frames)} frames, {times[-1] - times[0]:g} fs)"
        )
    return offset, len(frames)


def pairs_from_frames(
    frames: Sequence[Atoms],
    timestep_fs: float,
    trajectory: int = 0,
    every: int = 1,
    time_reversal: bool = False,
    name: str = "trajectory",
    dtype: torch.dtype = torch.float64,
    rollout_steps: int = 1,
) -> list[TrainingPair]:
    """Pairs ``(k, k + Δt/δ)`` for every ``every``-th start frame, with the reference
    ``rollout_steps - 1`` strides further when that is above 1 (see module doc)."""
    offset, n = frame_offset(frames, timestep_fs, name)
    steps = int(rollout_steps)
    if steps < 1:
        raise ValueError(f"rollout_steps must be >= 1, got {rollout_steps}")
    if steps * offset >= n:
        raise ValueError(
            f"{name}: {steps} strides of {timestep_fs:g} fs ({steps * offset} frames) do not "
            f"fit in the trajectory ({n} frames)"
        )

    def tensor(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype)

    def pair(start: Atoms, positions, velocities, path, speeds) -> TrainingPair:
        # path: (K, N, 3) displacements from ``positions``; speeds: (K, N, 3) velocities
        state = start.copy()
        state.positions = positions
        state.set_velocities(velocities / units.fs)
        later = len(path) > 1
        return TrainingPair(
            graph=from_atoms(state, dtype=dtype),
            displacements=tensor(path[0]),
            velocities=tensor(speeds[0]),
            trajectory=trajectory,
            later_displacements=tensor(path[1:]) if later else None,
            later_velocities=tensor(speeds[1:]) if later else None,
        )

    pairs = []
    for k in range(0, n - steps * offset, int(every)):
        chain = [frames[k + j * offset] for j in range(steps + 1)]
        steps_dr = [minimum_image(b.positions - a.positions, a.cell.array, a.pbc)
                    for a, b in zip(chain[:-1], chain[1:], strict=True)]  # fmt: skip
        path = np.cumsum(steps_dr, axis=0)  # r(t + jΔt) - r(t), j = 1..K
        v = [a.get_velocities() * units.fs for a in chain]
        first = chain[0]
        pairs.append(pair(first, first.positions, v[0], path, v[1:]))
        if time_reversal:
            # from r(t + KΔt) with -v(t + KΔt) back to r(t + (K - j)Δt), -v(t + (K - j)Δt)
            end = first.positions + path[-1]
            back = np.concatenate([path[-2::-1], np.zeros_like(path[:1])]) - path[-1]
            pairs.append(pair(first, end, -v[-1], back, [-u for u in v[-2::-1]]))
    return pairs


def build_pairs(
    sources: Sequence[str | os.PathLike],
    timestep_fs: float,
    every: int = 1,
    time_reversal: bool = False,
    frame_interval_fs: float | None = None,
    dtype: torch.dtype = torch.float64,
    lammps_types: Sequence[str | int] | None = None,
    rollout_steps: int = 1,
) -> list[TrainingPair]:
    """Pairs from several trajectory files; ``pair.trajectory`` is the file's index
    (``frame_interval_fs`` and ``lammps_types`` as in :func:`load_trajectory`,
    ``rollout_steps`` as in :func:`pairs_from_frames`)."""
    if not sources:
        raise ValueError("no trajectories given")
    pairs: list[TrainingPair] = []
    for t, source in enumerate(sources):
        frames = load_trajectory(source, frame_interval_fs, lammps_types)
        pairs += pairs_from_frames(frames, timestep_fs, t, every, time_reversal, str(source), dtype,
                                   rollout_steps)  # fmt: skip
    return pairs


def split_by_trajectory(
    pairs: list[TrainingPair], validation_fraction: float, seed: int = 0
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Whole trajectories to validation (at least one, never all)."""
    ids = sorted({p.trajectory for p in pairs})
    if len(ids) < 2:
        raise ValueError(
            "splitting by trajectory needs at least two trajectories (e.g. several NVE "
            "segments), so that validation frames never neighbour training frames"
        )
    rng = np.random.default_rng(seed)
    n_val = min(len(ids) - 1, max(1, int(round(validation_fraction * len(ids)))))
    held = set(rng.choice(ids, size=n_val, replace=False).tolist())
    return [p for p in pairs if p.trajectory not in held], [
        p for p in pairs if p.trajectory in held
    ]


def pair_statistics(pairs: list[TrainingPair], cutoff: float) -> dict[str, float]:
    """RMS displacement (Å) and new-velocity (Å/fs) components, the mean neighbour count
    within ``cutoff`` (edges a pair already carries are taken as built at ``cutoff``) and
    a speed-basis top of 4x the RMS speed of the lightest element."""
    dr = torch.cat([p.displacements for p in pairs])
    v = torch.cat([p.velocities for p in pairs])
    sample = pairs[:: max(1, len(pairs) // 50)]
    edges = sum(
        (p.graph if p.graph.edge_index is not None else p.graph.with_neighbors(cutoff)).n_edges
        for p in sample
    )
    atoms = sum(p.graph.n_atoms for p in sample)
    masses = torch.cat([p.graph.masses for p in pairs])
    speeds = torch.cat([p.graph.velocities.norm(dim=1) for p in pairs])
    light = masses == masses.min()
    return {
        "displacement_scale": float(dr.pow(2).mean().sqrt()),
        "velocity_scale": float(v.pow(2).mean().sqrt()),
        "avg_num_neighbors": max(edges / atoms, 1.0),
        "max_speed": 4.0 * float(speeds[light].pow(2).mean().sqrt()),
    }
