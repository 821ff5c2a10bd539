"""Physical observables of a trajectory, and their comparison with a reference run.

- Radial distribution function ``g(r)`` with mdtraj (``mdtraj.compute_rdf``, minimum-image
  pairs, ``r_max <= L/2``); the difference of two RDFs is the integrated absolute
  difference per unit density, ``∫ |g_a(r) - g_b(r)| dr`` (Å).
- Vibrational density of states from the velocity autocorrelation,
  ``D(ω) ∝ Σ_i m_i |∫ v_i(t) e^{-iωt} dt|²`` (Wiener-Khinchin; Dickey & Paskin, Phys. Rev.
  188, 1407 (1969)), normalised to unit area on the frequency grid (THz); the overlap of
  two spectra is ``∫ min(D_a, D_b) dν`` (1 for identical spectra).
- Mean squared displacement of unwrapped positions over all time origins and the
  Einstein diffusion coefficient ``D = lim MSD(t) / (6t)`` from a linear fit (Å²/fs,
  reported in 10⁻⁹ m²/s).
- Drift along a run: per stretch of frames the mean temperature, RDF first peak and
  RMS fluctuation about the mean positions (:func:`drift`).
- Neighbour velocity correlation, a kinetic equipartition check that needs no second
  element (:func:`neighbour_velocity_correlation`).
- Temperature mean with its block-averaged standard error, and the fluctuation against
  the canonical ``σ_T = T sqrt(2 / N_dof)``.
  Where a file stores velocities the temperature is recomputed from them the same way for
  every run, ``T = Σ_i m_i |v_i - v_com - ω × (r_i - r_com)|² / (N_dof k_B)``, the rigid
  rotation ``ω = I⁻¹ L`` taken out only for a system with no periodic cell (a molecule in
  vacuum, whose rotation carries no heat in a forecaster run): a reference file written
  with ASE's 3N count and a forecaster file written over 3N - 6 then compare.
Units in: Å, fs, Å/fs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class TrajectoryData:
    """Positions (F, N, 3) Å, velocities (F, N, 3) Å/fs or None, cells (F, 3, 3) Å,
    times (F,) fs, masses (N,) amu, temperatures (F,) K or None, potential and kinetic
    energies (F,) eV or None (when the file stores them)."""

    positions: np.ndarray
    velocities: np.ndarray | None
    cells: np.ndarray
    times: np.ndarray
    masses: np.ndarray
    temperatures: np.ndarray | None
    potential_energies: np.ndarray | None = None
    kinetic_energies: np.ndarray | None = None
    numbers: np.ndarray | None = None  # (N,) atomic numbers


def load(path: str | os.PathLike, start: int = 0) -> TrajectoryData:
    """Frames ``start:`` of an engine HDF5 trajectory."""
    from ase import units

    from trajcast_engine.trajectory import TrajectoryReader

    with TrajectoryReader(path) as reader:
        frames = reader[start:]
        masses = reader.masses
    if len(frames) < 2:
        raise ValueError(f"{path} has {len(frames)} frames after {start}: need at least 2")
    has_v = frames[0].has("momenta")

    def series(values: list) -> np.ndarray | None:
        return None if any(v is None for v in values) else np.array(values, dtype=float)

    def potential(atoms) -> float | None:
        return None if atoms.calc is None else atoms.calc.results.get("energy")

    return TrajectoryData(
        positions=np.stack([a.positions for a in frames]),
        velocities=np.stack([a.get_velocities() * units.fs for a in frames]) if has_v else None,
        cells=np.stack([a.cell.array for a in frames]),
        times=np.array([a.info["time_fs"] for a in frames]),
        masses=np.asarray(masses, dtype=np.float64),
        temperatures=series([a.info.get("temperature") for a in frames]),
        potential_energies=series([potential(a) for a in frames]),
        kinetic_energies=series([a.info.get("kinetic_energy") for a in frames]),
        numbers=np.array(frames[0].numbers),
    )


def rdf(
    data: TrajectoryData,
    r_max: float | None = None,
    bin_width: float = 0.02,
    max_distances: int = 50_000_000,
):
    """``(r, g)`` in Å over all frames (all atom pairs), with mdtraj. For a molecule (no
    cell) ``g`` is the pair-distance distribution instead, normalised to unit area, up to
    ``r_max`` (default 10 Å).

    mdtraj holds every pair distance of the frames it is given (frames x pairs floats:
    6.5 GB for 50,000 frames of 256 atoms), so the frames go in blocks of at most
    ``max_distances`` distances, and the blocks' RDFs are combined with mdtraj's own
    normalisation, ``g = Σ counts / (n_pairs · V_shell · Σ_frames 1/V)``: block b weighs
    ``Σ_{frames in b} 1/V``. The result equals one call over all frames."""
    import mdtraj

    n = data.positions.shape[1]
    if abs(np.linalg.det(data.cells[0])) < 1e-6:
        return _pair_distance_distribution(data, 10.0 if r_max is None else r_max, bin_width)
    half = 0.5 * float(np.min(np.linalg.norm(data.cells[0], axis=1)))
    r_max = half if r_max is None else min(float(r_max), half)
    top = mdtraj.Topology()
    chain = top.add_chain()
    for _ in range(n):
        top.add_atom("X", mdtraj.element.virtual, top.add_residue("X", chain))
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    bins = int(round(r_max / bin_width))
    frames = data.positions.shape[0]
    block = max(1, int(max_distances) // max(1, len(pairs)))
    total, weight = 0.0, 0.0
    for start in range(0, frames, block):
        rows = slice(start, min(start + block, frames))
        traj = mdtraj.Trajectory(data.positions[rows] / 10.0, top)
        traj.unitcell_vectors = data.cells[rows] / 10.0
        r, g = mdtraj.compute_rdf(traj, pairs, r_range=(0.0, r_max / 10.0), n_bins=bins)
        w = float(np.sum(1.0 / traj.unitcell_volumes))
        total, weight = total + w * g, weight + w
    return r * 10.0, total / weight


def _pair_distance_distribution(data: TrajectoryData, r_max: float, bin_width: float):
    i, j = np.triu_indices(data.positions.shape[1], k=1)
    distances = np.linalg.norm(data.positions[:, j] - data.positions[:, i], axis=-1)
    edges = np.arange(0.0, float(r_max) + 0.5 * bin_width, bin_width)
    counts, _ = np.histogram(distances, bins=edges)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (counts.sum() * bin_width)


def first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """``(position, height)`` of the first peak: the maximum of the first stretch where
    ``g > 1`` (the global maximum can be a sharper later shell in a crystal)."""
    above = np.flatnonzero(g > 1.0)
    if above.size == 0:
        k = int(np.argmax(g))
        return float(r[k]), float(g[k])
    start = above[0]
    stop = start + int(np.argmax(g[start:] <= 1.0)) if np.any(g[start:] <= 1.0) else len(g)
    k = start + int(np.argmax(g[start:stop]))
    return float(r[k]), float(g[k])


def rdf_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """``∫ |g_a - g_b| dr`` (Å) on a shared grid."""
    (r, ga), (r2, gb) = a, b
    if not np.allclose(r, r2):
        raise ValueError("the two RDFs use different grids")
    return float(np.sum(np.abs(ga - gb)) * (r[1] - r[0]))


def vdos(data: TrajectoryData, window_fs: float = 2000.0) -> tuple[np.ndarray, np.ndarray]:
    """``(ν in THz, D(ν))``, unit area, from the mass-weighted velocity spectrum,
    averaged over half-overlapping Hann windows of ``window_fs`` (Welch's method;
    resolution 1/window, 0.5 THz at 2 ps)."""
    if data.velocities is None:
        raise ValueError("the trajectory has no velocities: the VDOS needs them")
    dt = float(np.mean(np.diff(data.times)))  # fs
    v = data.velocities
    length = int(min(v.shape[0], max(8, round(window_fs / dt))))
    taper = np.hanning(length)[:, None, None]
    starts = range(0, v.shape[0] - length + 1, max(1, length // 2))
    spectrum = sum(np.abs(np.fft.rfft(v[s : s + length] * taper, axis=0)) ** 2 for s in starts)
    density = np.einsum("fna,n->f", spectrum, data.masses)
    nu = np.fft.rfftfreq(length, d=dt) * 1000.0  # 1/fs -> THz
    area = np.sum(density) * (nu[1] - nu[0])
    return nu, density / area


ALIASED_WEIGHT = 0.01  # the most VDOS weight allowed next to the Nyquist frequency


def nyquist_weight(nu: np.ndarray, density: np.ndarray, band: float = 0.02) -> float:
    """The fraction of a :func:`vdos` spectrum's weight in the top ``band`` of its
    frequency range (at least its last bin), which ends at the Nyquist frequency
    ``1 / (2 Δt)`` of frames ``Δt`` apart. A spectrum the frames resolve falls to zero
    before it; weight there (more than :data:`ALIASED_WEIGHT`) means some atoms vibrate
    faster than the frames can follow, and their lines are aliased: folded back below
    the Nyquist frequency (Shannon's sampling theorem). A broad spectrum folds onto the
    whole band, this one included; a lone sharp line may fold to mid-band and go
    unnoticed. Copper's phonons (up to 7.5 THz) need frames at most 66 fs apart; an N-H
    stretch (about 100 THz) under 5 fs."""
    top = nu >= (1.0 - band) * nu[-1]
    return float(np.sum(density[top]) / np.sum(density))


def vdos_overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """``∫ min(D_a, D_b) dν`` on ``a``'s grid (``b`` interpolated onto it)."""
    (nu, da), (nu_b, db) = a, b
    db = np.interp(nu, nu_b, db, right=0.0)
    db = db / (np.sum(db) * (nu[1] - nu[0]))
    return float(np.sum(np.minimum(da, db)) * (nu[1] - nu[0]))


def vdos_mean_frequency(spectrum: tuple[np.ndarray, np.ndarray]) -> float:
    """``∫ ν D(ν) dν / ∫ D(ν) dν`` (THz) of a :func:`vdos` spectrum: a shift of the
    whole spectrum that the overlap barely registers (a crystal's force constants 1%
    stiff raise it 0.5%, and its thermal ⟨u²⟩ = k_B T / (m ω²) falls 1%)."""
    nu, density = spectrum
    return float(np.sum(nu * density) / np.sum(density))


def msd(data: TrajectoryData) -> tuple[np.ndarray, np.ndarray]:
    """``(lag in fs, MSD in Å²)`` for lags up to half the run, averaged over every time
    origin and atom: ``MSD(m) = <|r(k+m) - r(k)|²>_k``, computed for all lags at once as
    ``S1(m) - 2 S2(m)`` with ``S2`` the positions' autocorrelation by FFT (Calandrini et
    al., Collection SFN 12, 201 (2011); the nMOLDYN algorithm). Positions are unwrapped
    first by minimum-image steps between frames (along the non-zero cell vectors of the
    first frame). Averaging over origins rather than taking one (t = 0) cuts the
    statistical error of a diffusion coefficient several-fold."""
    unwrapped = unwrapped_positions(data)
    frames, atoms = unwrapped.shape[:2]
    lags = np.arange(frames // 2 + 1)
    values = sum(
        _msd_sum_over_atoms(unwrapped[:, chunk], lags.size)
        for chunk in np.array_split(np.arange(atoms), max(1, atoms // 64))
    )
    return data.times[lags] - data.times[0], values / atoms


def _msd_sum_over_atoms(r: np.ndarray, n_lags: int) -> np.ndarray:
    """Σ over atoms of the all-origins MSD, lags 0..n_lags-1, of unwrapped positions
    (F, n, 3): ``S1(m) = (Σ_k r²(k) + Σ_k r²(k+m)) / (F - m)``, from cumulative sums of
    ``r²``, and ``S2(m)`` from the FFT autocorrelation."""
    frames = r.shape[0]
    r = r - r.mean(axis=0)  # a constant shift leaves every displacement as it is
    spectrum = np.fft.rfft(r, n=2 * frames, axis=0)
    s2 = np.fft.irfft(np.abs(spectrum) ** 2, axis=0)[:n_lags].sum(axis=2)
    head = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(np.sum(r**2, axis=2), axis=0)])
    m = np.arange(n_lags)
    total = head[-1]
    s1 = total - head[m] + head[frames - m]  # Σ_{k<F-m} r²(k) + Σ_{k>=m} r²(k)
    return np.sum((s1 - 2.0 * s2) / (frames - m)[:, None], axis=1)


def diffusion_coefficient(data: TrajectoryData) -> float:
    """Einstein ``D = MSD / (6 t)`` in 10⁻⁹ m²/s (1 Å²/fs = 10⁻⁵ m²/s): the slope of a
    linear fit of :func:`msd` over lags from 5% to 20% of the run (past the ballistic
    regime for a liquid run of tens of ps; longer lags have few independent origins and
    add scatter). For random walks of 256 particles over 2,500 frames the relative spread
    of D over 12 seeds is 2.3%, against 4.5% fitting lags up to half the run and 9.6%
    from the MSD of one time origin (the estimator used before)."""
    t, values = msd(data)
    first, last = len(t) // 10, max(len(t) * 2 // 5, len(t) // 10 + 3)
    slope = np.polyfit(t[first:last], values[first:last], 1)[0]
    return float(slope / 6.0 * 1e4)


def degrees_of_freedom(data: TrajectoryData) -> int:
    """``3N - 3`` for a periodic system (momentum fixed), ``3N - 6`` for a molecule in
    vacuum (angular momentum fixed too)."""
    n = data.positions.shape[1]
    return 3 * n - 3 if np.any(data.cells) else max(1, 3 * n - 6)


def _frames_as_batch(data: TrajectoryData) -> dict[str, Any]:
    """The frames as one batch of systems for :mod:`integrators.kinetics` (a frame a
    system): tensors ``thermal`` (velocities less the centre-of-mass motion, and less the
    rigid rotation where no frame has a periodic cell), ``positions``, ``masses``,
    ``system_idx``, the flags ``isolated`` and the count ``frames``."""
    import torch

    from integrators.kinetics import decompose_velocities

    if data.velocities is None:
        raise ValueError("the trajectory has no velocities")
    frames, n = data.velocities.shape[:2]
    batch = {
        "positions": torch.from_numpy(data.positions.reshape(-1, 3)),
        "masses": torch.from_numpy(np.tile(data.masses, frames)),
        "system_idx": torch.arange(frames).repeat_interleave(n),
        "isolated": torch.full((frames,), not np.any(data.cells)),
        "frames": frames,
    }
    batch["thermal"] = decompose_velocities(
        torch.from_numpy(data.velocities.reshape(-1, 3)), batch["positions"], batch["masses"],
        batch["system_idx"], frames, remove_com=True, angular=batch["isolated"],
    )[0]  # fmt: skip
    return batch


def internal_temperatures(data: TrajectoryData, n_dof: int) -> np.ndarray:
    """(F,) K from the velocities over ``n_dof`` degrees of freedom: centre-of-mass motion
    removed, and the rigid rotation too where no frame has a periodic cell (module doc).
    Each frame is one system of the integrators' kinetics
    (:func:`integrators.kinetics.decompose_velocities`)."""
    from integrators.kinetics import KB, kinetic_energies

    b = _frames_as_batch(data)
    kinetic = kinetic_energies(b["thermal"], b["masses"], b["system_idx"], b["frames"])
    return (2.0 * kinetic / (n_dof * KB)).numpy()


def several_elements_moving(data: TrajectoryData) -> bool:
    """Whether :func:`element_temperatures` has anything to compare: velocities and more
    than one element."""
    return (data.velocities is not None and data.numbers is not None
            and len(np.unique(data.numbers)) > 1)  # fmt: skip


def element_temperatures(data: TrajectoryData) -> dict[str, float]:
    """``{symbol: K}``: each element's kinetic temperature averaged over the frames, from
    the thermal velocities (as :func:`internal_temperatures`) over that element's own
    share of the degrees of freedom (:func:`integrators.kinetics.constrained_shares`), so
    that at equipartition every element reads the system temperature. A learned step that
    pumps energy into some modes and drains others shows up here, e.g. the oxygens of a
    molecule running hot under a global thermostat."""
    import torch
    from ase.data import chemical_symbols

    from integrators.kinetics import constrained_shares, species_temperatures

    if data.numbers is None:
        raise ValueError("per-element temperatures need the atomic numbers")
    b = _frames_as_batch(data)
    shares = constrained_shares(b["positions"], b["masses"], b["system_idx"], b["frames"],
                                True, b["isolated"])  # fmt: skip
    species = torch.from_numpy(np.tile(data.numbers, b["frames"]))
    per_frame = species_temperatures(b["thermal"], b["masses"], species, b["system_idx"],
                                     b["frames"], shares)  # fmt: skip
    return {chemical_symbols[z]: float(np.mean(t)) for z, t in sorted(per_frame.items())}


def neighbour_velocity_correlation(
    data: TrajectoryData, cutoff: float, max_frames: int = 200
) -> float:
    """Mass-weighted correlation of the thermal velocities ``u`` (as
    :func:`internal_temperatures`) of atoms closer than ``cutoff`` (Å), over up to
    ``max_frames`` evenly spaced frames:

        c = Σ_pairs sqrt(m_i m_j) u_i·u_j / Σ_pairs ½ (m_i |u_i|² + m_j |u_j|²).

    In the canonical ensemble the momenta of different atoms are independent of each
    other and of the positions (the Maxwell-Boltzmann factor), so ``c`` is zero but for
    the fixed total momentum (``-1/(N - 1)`` for one element) and, in a molecule in
    vacuum, the removed rotation (-0.1 over the bonds of alanine dipeptide in MD: compare
    with reference MD rather than with zero). Dynamics that feed the slow,
    collective modes and drain the fast ones, where neighbours move against each other,
    leave ``c > 0``; with one element, per-element temperatures cannot see that, and in a
    crystal it narrows the bond-length spread at an unchanged temperature."""
    from trajcast_engine.neighbors import neighbor_list

    rows = np.unique(np.linspace(0, len(data.times) - 1, max_frames).round().astype(int))
    chosen = select_frames(data, rows)
    batch = _frames_as_batch(chosen)  # the frames as one batch: pairs never cross frames
    u, m = batch["thermal"].numpy(), batch["masses"].numpy()
    starts = np.arange(len(rows) + 1) * chosen.positions.shape[1]
    pairs = neighbor_list(chosen.positions.reshape(-1, 3), chosen.cells,
                          bool(np.any(chosen.cells)), cutoff, ptr=starts)  # fmt: skip
    i, j = pairs.i, pairs.j
    product = float(np.sum(np.sqrt(m[i] * m[j]) * np.sum(u[i] * u[j], axis=1)))
    kinetic = m * np.sum(u * u, axis=1)
    energy = float(np.sum(0.5 * (kinetic[i] + kinetic[j])))
    if energy == 0.0:
        raise ValueError(f"no two atoms closer than the cutoff {cutoff} Å")
    return product / energy


def temperatures(data: TrajectoryData, n_dof: int) -> np.ndarray | None:
    """(F,) K: from the velocities where the file has them (:func:`internal_temperatures`),
    else the temperatures it stores, else None."""
    if data.velocities is not None:
        return internal_temperatures(data, n_dof)
    return data.temperatures


def standard_error_of_mean(series: np.ndarray, min_blocks: int = 16) -> float:
    """Standard error of the mean of a time-correlated series by block averaging
    (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)): the series is halved into
    ever longer blocks, ``s_k = std(block means) / sqrt(n_blocks - 1)`` at each level, and
    the largest ``s_k`` over the levels that keep at least ``min_blocks`` blocks is
    returned (it grows with the block length until blocks are longer than the
    correlation time, then levels off). NaN for fewer than ``2 min_blocks`` samples."""
    x = np.asarray(series, dtype=np.float64)
    if x.size < 2 * min_blocks:
        return float("nan")
    best = 0.0
    while x.size >= min_blocks:
        best = max(best, float(np.std(x) / np.sqrt(x.size - 1)))
        x = 0.5 * (x[: x.size // 2 * 2 : 2] + x[1 : x.size // 2 * 2 : 2])
    return best


def temperature_statistics(series: np.ndarray, n_dof: int) -> dict[str, float | None]:
    """Mean of a temperature series (K), its standard error (block averaging; None for a
    series too short to tell), standard deviation, and the canonical ``T sqrt(2/N_dof)``."""
    mean = float(np.mean(series))
    error = standard_error_of_mean(series)
    return {
        "mean": mean,
        "standard_error": error if np.isfinite(error) else None,
        "std": float(np.std(series)),
        "canonical_std": mean * float(np.sqrt(2.0 / n_dof)),
    }


def temperature_summary(data: Runs, n_dof: int) -> dict[str, float | None]:
    """:func:`temperature_statistics` of the temperatures :func:`temperatures` gives; of
    several runs, their series joined into one."""
    series = [temperatures(run, n_dof) for run in _as_runs(data)]
    if any(t is None for t in series):
        raise ValueError("the trajectory has neither velocities nor temperatures")
    return temperature_statistics(np.concatenate(series), n_dof)


def format_temperature(stats: dict[str, float | None]) -> str:
    """``mean ± standard error K (σ std K, canonical σ ...)`` of
    :func:`temperature_statistics`; the error is left out where it is None."""
    error = stats.get("standard_error")
    mean = f"{stats['mean']:.1f}" + (f" ± {error:.1f}" if error is not None else "")
    return f"{mean} K (σ {stats['std']:.1f} K, canonical σ {stats['canonical_std']:.1f} K)"


def unwrapped_positions(data: TrajectoryData) -> np.ndarray:
    """(F, N, 3) Å: positions made continuous by minimum-image steps between frames
    (along the non-zero cell vectors of the first frame), starting from the first."""
    from trajcast_engine.data.pairs import minimum_image

    steps = np.diff(data.positions, axis=0)
    cell = data.cells[0]
    pbc = np.any(cell != 0.0, axis=1)
    steps = minimum_image(steps.reshape(-1, 3), cell, pbc).reshape(steps.shape)
    return data.positions[:1] + np.concatenate([np.zeros_like(steps[:1]), np.cumsum(steps, axis=0)])


def drift(
    data: TrajectoryData, temperature_series: np.ndarray | None, windows: int = 5
) -> tuple[list[dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]:
    """``(rows, rdfs)``: the run cut into ``windows`` equal stretches of frames, the RDF
    ``(r, g)`` of each, and a row per stretch: its time span (``start_ps``, ``end_ps``),
    the mean of ``temperature_series`` (K, one per frame, as :func:`temperatures` gives;
    None when that is None), the RDF first peak (``peak_position`` Å, ``peak_height``),
    the RDF difference from the first stretch ``∫ |g_k - g_1| dr`` (Å) with the size of
    that difference that sampling noise alone gives (``rdf_noise``: the difference
    between the stretch's even and odd frames over sqrt 2, as two samples of half the
    frames differ sqrt 2 times more than two of all of them; None under 4 frames), and the
    RMS fluctuation of the atoms about their mean positions in the stretch,
    ``sqrt(<|r_i(t) - <r_i>|²>)`` (Å; unwrapped, centre of mass removed). A stable run
    keeps these level; a rollout that loses equipartition, melts or heats shows a falling
    first peak and a growing fluctuation (a crystal's fluctuation is its vibrational
    amplitude; a liquid's also holds the diffusion within a stretch, the same in every
    stretch of a steady run)."""
    frames = data.positions.shape[0]
    if windows < 1 or frames < 2 * windows:
        raise ValueError(f"{frames} frames cannot be cut into {windows} stretches of 2 or more")
    unwrapped = unwrapped_positions(data)
    weights = data.masses / data.masses.sum()
    unwrapped = unwrapped - np.einsum("fni,n->fi", unwrapped, weights)[:, None]
    rows, rdfs = [], []
    for part in np.array_split(np.arange(frames), windows):
        r, g = rdf(select_frames(data, part))
        rdfs.append((r, g))
        position, height = first_peak(r, g)
        halves = [rdf(select_frames(data, part[k::2])) for k in (0, 1)] if part.size > 3 else None
        x = unwrapped[part]
        rows.append({
            "start_ps": float(data.times[part[0]]) / 1000.0,
            "end_ps": float(data.times[part[-1]]) / 1000.0,
            "temperature": (
                None if temperature_series is None else float(np.mean(temperature_series[part]))
            ),
            "peak_position": position,
            "peak_height": height,
            "rdf_difference_from_first": rdf_difference((r, g), rdfs[0]),
            "rdf_noise": None if halves is None else rdf_difference(*halves) / np.sqrt(2.0),
            "rms_fluctuation": float(np.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, -1)))),
        })  # fmt: skip
    return rows, rdfs


def select_frames(data: TrajectoryData, rows: np.ndarray) -> TrajectoryData:
    """The frames ``rows`` (indices) of ``data``."""

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]

    return TrajectoryData(
        positions=data.positions[rows], velocities=take(data.velocities),
        cells=data.cells[rows], times=data.times[rows], masses=data.masses,
        temperatures=take(data.temperatures),
        potential_energies=take(data.potential_energies),
        kinetic_energies=take(data.kinetic_energies), numbers=data.numbers,
    )  # fmt: skip


Runs = TrajectoryData | Sequence[TrajectoryData]


def _as_runs(runs: Runs) -> list[TrajectoryData]:
    return [runs] if isinstance(runs, TrajectoryData) else list(runs)


def _pooled(values: list[np.ndarray], runs: list[TrajectoryData]) -> np.ndarray:
    """The frame-weighted mean of per-run arrays on one grid."""
    frames = np.array([run.positions.shape[0] for run in runs], dtype=float)
    return np.tensordot(frames / frames.sum(), np.stack(values), axes=1)


def pooled_rdf(runs: Runs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rdf` over independent runs of one system (the same atoms and cell): each
    run's ``g`` weighted by its frame count, equal to the RDF of all their frames."""
    runs = _as_runs(runs)
    each = [rdf(run) for run in runs]
    if any(r.shape != each[0][0].shape or not np.allclose(r, each[0][0]) for r, _ in each):
        raise ValueError("the runs' RDFs use different grids: pool runs of one system")
    return each[0][0], _pooled([g for _, g in each], runs)


def pooled_vdos(runs: Runs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vdos` over independent runs: each run's spectrum (its own windows, none
    across the join of two runs, at most as long as the shortest run) weighted by its
    frame count."""
    runs = _as_runs(runs)
    shortest = min(len(run.times) * float(np.mean(np.diff(run.times))) for run in runs)
    each = [vdos(run, window_fs=min(2000.0, shortest)) for run in runs]
    if any(nu.shape != each[0][0].shape or not np.allclose(nu, each[0][0]) for nu, _ in each):
        raise ValueError("the runs' spectra use different grids: pool runs of one frame step")
    return each[0][0], _pooled([d for _, d in each], runs)


def compare(test: Runs, reference: Runs, n_dof: int, diffusion: bool = False,
            neighbour_cutoff: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The validation metrics of a rollout against reference MD of the same system;
    ``diffusion=True`` (liquids) adds the diffusion coefficients and their relative
    difference, ``neighbour_cutoff`` (Å) the :func:`neighbour_velocity_correlation` of
    each side (run means).

    Either side may be several independent runs (other seeds) of the system, pooled: the
    RDF and VDOS are their frame-weighted means (:func:`pooled_rdf`, :func:`pooled_vdos`),
    the temperatures one series of all frames (its block-averaged error then spans the
    joins, where the runs are uncorrelated), the per-element temperatures and the
    diffusion coefficient the means over runs. Pooling shrinks the sampling noise of the
    RDF and spectrum as one longer run would, without its slowest correlations."""
    tests, references = _as_runs(test), _as_runs(reference)
    if not tests or not references:
        raise ValueError("compare needs at least one run on each side")
    rdf_t, rdf_r = pooled_rdf(tests), pooled_rdf(references)
    (peak_t, height_t), (peak_r, height_r) = first_peak(*rdf_t), first_peak(*rdf_r)
    result: dict[str, Any] = {
        "runs": {"test": len(tests), "reference": len(references)},
        "rdf_integrated_abs_difference": rdf_difference(rdf_t, rdf_r),
        "rdf_first_peak": {"test": peak_t, "reference": peak_r},
        "rdf_first_peak_height": {"test": height_t, "reference": height_r},
    }
    moving = all(run.velocities is not None for run in tests + references)
    if moving:
        spectra = pooled_vdos(tests), pooled_vdos(references)
        result["vdos_overlap"] = vdos_overlap(*spectra)
        result["vdos_mean_frequency"] = dict(
            zip(("test", "reference"), map(vdos_mean_frequency, spectra), strict=True)
        )
    if all(run.velocities is not None or run.temperatures is not None
           for run in tests + references):  # fmt: skip
        result["temperature"] = {
            "test": temperature_summary(tests, n_dof),
            "reference": temperature_summary(references, n_dof),
        }
    if all(several_elements_moving(run) for run in tests + references):  # equipartition
        result["element_temperatures"] = {
            "test": _pooled_element_temperatures(tests),
            "reference": _pooled_element_temperatures(references),
        }
    if neighbour_cutoff is not None and moving:
        result["neighbour_velocity_correlation"] = {
            name: float(np.mean([neighbour_velocity_correlation(run, neighbour_cutoff)
                                 for run in runs]))
            for name, runs in (("test", tests), ("reference", references))
        }  # fmt: skip
    if diffusion:
        d_t = float(np.mean([diffusion_coefficient(run) for run in tests]))
        d_r = float(np.mean([diffusion_coefficient(run) for run in references]))
        result["diffusion"] = {"test": d_t, "reference": d_r, "relative_error": d_t / d_r - 1}
    return result


def _pooled_element_temperatures(runs: list[TrajectoryData]) -> dict[str, float]:
    each = [element_temperatures(run) for run in runs]
    symbols = list(each[0])
    means = _pooled([np.array([e[s] for s in symbols]) for e in each], runs)
    return dict(zip(symbols, map(float, means), strict=True))
