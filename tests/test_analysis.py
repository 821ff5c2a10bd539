"""Observables on trajectories with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase.build import bulk

from trajcast_engine import analysis
from trajcast_engine.analysis import TrajectoryData


def oscillating(freq_thz: float, frames: int = 2000, dt: float = 5.0) -> TrajectoryData:
    """Atoms on a lattice whose velocities oscillate at ``freq_thz``."""
    lattice = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    n = len(lattice)
    t = np.arange(frames) * dt
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (n, 3))
    omega = 2 * np.pi * freq_thz * 1e-3  # rad/fs
    amplitude = 0.05
    x = amplitude * np.sin(omega * t[:, None, None] + phase)
    v = amplitude * omega * np.cos(omega * t[:, None, None] + phase)
    return TrajectoryData(
        positions=lattice.positions[None] + x,
        velocities=v,
        cells=np.repeat(lattice.cell.array[None], frames, axis=0),
        times=t,
        masses=lattice.get_masses(),
        temperatures=None,
    )


def test_vdos_peaks_at_the_oscillation_frequency_and_overlaps():
    nu, d = analysis.vdos(oscillating(6.0))
    assert nu[np.argmax(d)] == pytest.approx(6.0, abs=0.1)
    assert np.sum(d) * (nu[1] - nu[0]) == pytest.approx(1.0)
    same = analysis.vdos_overlap((nu, d), analysis.vdos(oscillating(6.0)))
    other = analysis.vdos_overlap((nu, d), analysis.vdos(oscillating(4.0)))
    assert same == pytest.approx(1.0, abs=1e-9) and other < 0.1
    # the mean frequency sees a 1% shift the overlap hardly does
    mean = analysis.vdos_mean_frequency((nu, d))
    stiff = analysis.vdos_mean_frequency(analysis.vdos(oscillating(6.06)))
    assert mean == pytest.approx(6.0, rel=0.005) and stiff / mean == pytest.approx(1.01, abs=0.002)
    metrics = analysis.compare(oscillating(6.06), oscillating(6.0), 3)
    assert metrics["vdos_mean_frequency"] == {"test": stiff, "reference": mean}


def test_frames_too_far_apart_are_recognised_as_aliasing_the_spectrum():
    # atoms vibrating at 1-8 THz: frames 5 fs apart (Nyquist 100 THz) leave the top of
    # the spectrum empty; every 40th of them, 200 fs apart (Nyquist 2.5 THz), fold the
    # faster lines onto it
    rng = np.random.default_rng(3)
    frames, n, dt = 4000, 64, 5.0
    t = np.arange(frames) * dt
    omega = 2 * np.pi * 1e-3 * rng.uniform(1.0, 8.0, (n, 3))
    v = 0.01 * np.cos(omega * t[:, None, None] + rng.uniform(0, 2 * np.pi, (n, 3)))
    cells = np.repeat(np.eye(3)[None] * 20.0, frames, axis=0)
    fine = TrajectoryData(np.zeros_like(v), v, cells, t, np.ones(n), None)
    coarse = TrajectoryData(*(a[::40] for a in (fine.positions, v, cells, t)), np.ones(n), None)
    assert analysis.nyquist_weight(*analysis.vdos(fine)) < 1e-4
    assert analysis.nyquist_weight(*analysis.vdos(coarse)) > 10 * analysis.ALIASED_WEIGHT


def test_rdf_of_a_crystal_peaks_at_the_nearest_neighbour_distance():
    data = oscillating(6.0, frames=20)
    r, g = analysis.rdf(data)
    assert r[np.argmax(g)] == pytest.approx(3.61 / np.sqrt(2), abs=0.03)
    assert analysis.rdf_difference((r, g), (r, g)) == 0.0


def test_rdf_in_blocks_of_frames_equals_the_rdf_of_all_frames_at_once():
    # long runs are histogrammed in blocks of frames to bound memory; the blocks (here of
    # 3 frames, the last one shorter, in boxes of changing volume) must combine exactly
    data = oscillating(6.0, frames=20)
    scale = np.linspace(1.0, 1.05, 20)[:, None, None]
    data = dataclasses.replace(data, positions=data.positions * scale, cells=data.cells * scale)
    r, whole = analysis.rdf(data)
    pairs = data.positions.shape[1] * (data.positions.shape[1] - 1) // 2
    r_blocks, blocks = analysis.rdf(data, max_distances=3 * pairs)
    np.testing.assert_allclose(r_blocks, r)
    np.testing.assert_allclose(blocks, whole, rtol=1e-10, atol=1e-12)
    assert np.abs(blocks).sum() > 0


def test_msd_and_diffusion_of_a_random_walk():
    rng = np.random.default_rng(1)
    frames, n, dt, step = 400, 200, 10.0, 0.1
    cell = np.eye(3) * 20.0
    walk = np.cumsum(rng.normal(scale=step, size=(frames, n, 3)), axis=0)
    wrapped = walk % 20.0  # stored wrapped, as a trajectory file holds them
    data = TrajectoryData(
        positions=wrapped,
        velocities=None,
        cells=np.repeat(cell[None], frames, axis=0),
        times=np.arange(frames) * dt,
        masses=np.ones(n),
        temperatures=None,
    )
    t, values = analysis.msd(data)
    assert len(t) == frames // 2 + 1 and t[-1] == (frames // 2) * dt
    for lag in (0, 1, 37, frames // 2):  # every origin, every atom, unwrapped
        assert values[lag] == pytest.approx(_brute_force_msd(walk, lag), rel=1e-9, abs=1e-12)
    expected = step**2 / (2 * dt) * 1e4  # D = σ²/(2Δt) per axis, in 1e-9 m²/s
    assert analysis.diffusion_coefficient(data) == pytest.approx(expected, rel=0.15)
    with pytest.raises(ValueError, match="no velocities"):
        analysis.vdos(data)


def test_msd_of_a_molecule_in_vacuum_takes_positions_as_they_are():
    """No cell (all zeros, as a file of a molecule stores it): no unwrapping, no error."""
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(scale=3.0, size=(50, 5, 3)), axis=0)
    data = TrajectoryData(
        positions=walk,
        velocities=None,
        cells=np.zeros((50, 3, 3)),
        times=np.arange(50) * 1.0,
        masses=np.ones(5),
        temperatures=None,
    )
    _, values = analysis.msd(data)
    assert values == pytest.approx([_brute_force_msd(walk, m) for m in range(26)], rel=1e-9)


def _brute_force_msd(positions: np.ndarray, lag: int) -> float:
    steps = positions[lag:] - positions[: len(positions) - lag]
    return float(np.mean(np.sum(steps**2, axis=2)))


def test_first_peak_is_the_first_shell_not_the_sharpest():
    r = np.linspace(0, 8, 801)
    g = 6 * np.exp(-((r - 2.5) ** 2) / 0.01) + 9 * np.exp(-((r - 5.1) ** 2) / 0.001)
    position, height = analysis.first_peak(r, g)
    assert position == pytest.approx(2.5, abs=0.01) and height == pytest.approx(6.0, rel=0.01)


def test_a_molecule_gets_its_pair_distance_distribution():
    """No cell: ``rdf`` is the distribution of the pair distances, unit area."""
    frames = 50
    rng = np.random.default_rng(0)
    bond = 1.0 + 0.01 * rng.normal(size=frames)  # a diatomic vibrating around 1.0 Å
    positions = np.zeros((frames, 2, 3))
    positions[:, 1, 0] = bond
    data = TrajectoryData(positions=positions, velocities=None,
                          cells=np.zeros((frames, 3, 3)), times=np.arange(frames) * 5.0,
                          masses=np.ones(2), temperatures=None)  # fmt: skip
    r, p = analysis.rdf(data, r_max=3.0)
    assert np.sum(p) * (r[1] - r[0]) == pytest.approx(1.0)
    assert r[np.argmax(p)] == pytest.approx(1.0, abs=0.03)


def test_temperature_leaves_out_drift_and_a_molecules_rigid_rotation():
    """Temperatures come from the velocities: centre-of-mass drift never counts, and a
    molecule's rigid rotation does not either; a crystal's is thermal motion."""
    from ase import units
    from ase.build import molecule

    rng = np.random.default_rng(1)
    atoms = molecule("CH3CH2OH")
    masses = atoms.get_masses()
    n, frames, target = len(atoms), 400, 300.0
    sigma = np.sqrt(units.kB * target / (masses * units._amu * 1e10 / units._e))
    thermal = rng.normal(size=(frames, n, 3)) * sigma[None, :, None]
    r = atoms.positions - atoms.get_center_of_mass()
    spin = np.cross([0.0, 0.0, 0.02], r)  # 0.02 rad/fs about z: a hot rigid rotation
    data = TrajectoryData(
        positions=np.repeat(atoms.positions[None], frames, axis=0),
        velocities=thermal + spin + np.array([0.01, 0.0, 0.0]),
        cells=np.zeros((frames, 3, 3)),
        times=np.arange(frames) * 10.0,
        masses=masses,
        temperatures=np.full(frames, 5000.0),  # what a 3N count of all that would say
    )
    assert analysis.degrees_of_freedom(data) == 3 * n - 6
    t = analysis.temperature_summary(data, analysis.degrees_of_freedom(data))
    assert t["mean"] == pytest.approx(target, rel=0.03)
    rigid = analysis.internal_temperatures(
        TrajectoryData(data.positions, data.velocities - thermal, data.cells, data.times,
                       masses, None), 3 * n - 6)  # fmt: skip
    assert np.max(rigid) < 1e-6
    # the same velocities in a periodic box: the rotation is ordinary motion, drift is not
    boxed = TrajectoryData(data.positions, data.velocities - np.array([0.01, 0.0, 0.0]),
                           np.repeat(np.eye(3)[None] * 20.0, frames, axis=0), data.times,
                           masses, None)  # fmt: skip
    moving = TrajectoryData(boxed.positions, data.velocities, boxed.cells, data.times, masses,
                            None)  # fmt: skip
    assert analysis.degrees_of_freedom(boxed) == 3 * n - 3
    hot = analysis.internal_temperatures(boxed, 3 * n - 3)
    assert np.mean(hot) > 2 * target
    np.testing.assert_allclose(analysis.internal_temperatures(moving, 3 * n - 3), hot)


def test_element_temperatures_find_the_element_that_runs_hot():
    """Per-element temperatures of a molecule at equipartition all read the temperature,
    its rigid rotation and drift left out; carbons whose velocities run 20% fast read
    hottest, and :func:`analysis.compare` reports both runs."""
    from ase import units
    from ase.build import molecule

    rng = np.random.default_rng(3)
    atoms = molecule("CH3CH2OH")
    masses, n, frames = atoms.get_masses(), len(atoms), 3000
    sigma = np.sqrt(units.kB * 300.0 / (masses * units._amu * 1e10 / units._e))
    r = atoms.positions - atoms.get_center_of_mass()

    def run(carbon_scale: float) -> TrajectoryData:
        v = rng.normal(size=(frames, n, 3)) * sigma[None, :, None]
        v[:, atoms.numbers == 6] *= carbon_scale
        v += np.cross([0.0, 0.0, 0.02], r) + np.array([0.01, 0.0, 0.0])  # rotation, drift
        return TrajectoryData(
            positions=np.repeat(atoms.positions[None], frames, axis=0), velocities=v,
            cells=np.zeros((frames, 3, 3)), times=np.arange(frames) * 10.0, masses=masses,
            temperatures=None, numbers=atoms.numbers,
        )  # fmt: skip

    fair, hot = run(1.0), run(1.2)
    for symbol, t in analysis.element_temperatures(fair).items():
        assert t == pytest.approx(300.0, rel=0.03), symbol
    t = analysis.element_temperatures(hot)
    assert t["C"] > 1.2 * 300.0  # (the removed drift and rotation take some of it)
    assert t["C"] > 1.1 * max(t["H"], t["O"])
    metrics = analysis.compare(hot, fair, analysis.degrees_of_freedom(fair))
    assert metrics["element_temperatures"]["test"]["C"] == t["C"]
    assert set(metrics["element_temperatures"]["reference"]) == {"C", "H", "O"}
    one_element = TrajectoryData(fair.positions, fair.velocities, fair.cells, fair.times,
                                 masses, None, numbers=np.full(n, 6))  # fmt: skip
    assert "element_temperatures" not in analysis.compare(one_element, one_element, 3 * n - 6)


def test_neighbour_velocity_correlation_is_zero_at_equipartition_and_sees_collective_motion():
    """Independent Maxwell-Boltzmann velocities in an fcc crystal: neighbours uncorrelated
    but for the fixed momentum (-1/(N - 1)); a long-wavelength wave (neighbours in step)
    reads near +1, a zone-boundary one (neighbours against each other) negative."""
    rng = np.random.default_rng(5)
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    n, frames = len(crystal), 60
    cell = crystal.cell.array
    positions = crystal.positions + rng.normal(scale=0.05, size=(frames, n, 3))

    def run(v: np.ndarray) -> TrajectoryData:
        return TrajectoryData(positions, v, np.repeat(cell[None], frames, axis=0),
                              np.arange(frames) * 20.0, np.full(n, 63.5), None)  # fmt: skip

    canonical = analysis.neighbour_velocity_correlation(run(rng.normal(size=(frames, n, 3))), 3.0)
    assert canonical == pytest.approx(-1.0 / (n - 1), abs=0.01)
    x = crystal.positions[:, 0] / (3 * 3.61)  # fractional along a: a wave of 3 cells
    phases = rng.uniform(0, 2 * np.pi, frames)[:, None, None]
    wave = np.sin(2 * np.pi * x[None, :, None] + phases) * np.array([0.0, 1.0, 0.0])
    assert analysis.neighbour_velocity_correlation(run(wave), 3.0) > 0.5  # (4 + 8 / 2) / 12
    zone_edge = np.cos(2 * np.pi * crystal.positions[:, 0] / 3.61)  # +1 / -1 on the planes
    optical = zone_edge[None, :, None] * rng.normal(size=(frames, 1, 3))
    assert analysis.neighbour_velocity_correlation(run(optical), 3.0) < -0.2  # (4 - 8) / 12
    with pytest.raises(ValueError, match="no two atoms closer than the cutoff"):
        analysis.neighbour_velocity_correlation(run(optical), 1.0)


def test_standard_error_of_a_correlated_mean_by_block_averaging():
    """AR(1) with φ = 0.9: the true error of the mean is sqrt((1+φ)/(1-φ)) = 4.4x the naive
    σ/sqrt(n); block averaging must find it, and the naive value for white noise."""
    rng = np.random.default_rng(3)
    n, phi = 2**16, 0.9
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    sigma = 1.0 / np.sqrt(1 - phi**2)
    expected = sigma / np.sqrt(n) * np.sqrt((1 + phi) / (1 - phi))
    assert 0.8 < analysis.standard_error_of_mean(x) / expected < 1.4
    assert 0.8 < analysis.standard_error_of_mean(noise) / (1 / np.sqrt(n)) < 1.4
    assert np.isnan(analysis.standard_error_of_mean(np.ones(10)))


def test_drift_finds_a_run_that_heats_and_none_in_a_steady_one():
    """Per stretch of a run: the RMS fluctuation about the mean positions is the
    vibrational amplitude (A sqrt(3/2) for sines of amplitude A on each axis), level in a
    steady crystal and growing with it in one whose amplitude doubles, which also lowers
    the RDF first peak; positions stored wrapped into the cell are unwrapped first."""
    steady = oscillating(6.0, frames=500)
    cell = steady.cells[0]
    steady.positions = steady.positions % np.diag(cell)  # atoms at 0 wrap to L
    n_dof = 3 * steady.positions.shape[1] - 3
    from_velocities = analysis.temperatures(steady, n_dof)
    rows, rdfs = analysis.drift(steady, from_velocities, windows=5)
    assert len(rows) == 5 and rows[0]["start_ps"] == 0.0
    assert rows[-1]["end_ps"] == pytest.approx(499 * 5.0 / 1000)
    for row in rows:
        assert row["rms_fluctuation"] == pytest.approx(0.05 * np.sqrt(1.5), rel=0.03)
        assert row["rdf_difference_from_first"] < 0.05 and 0 < row["rdf_noise"] < 0.05
        assert row["peak_height"] == pytest.approx(rows[0]["peak_height"], rel=0.03)
    assert rows[0]["rdf_difference_from_first"] == 0.0 and len(rdfs) == 5
    assert analysis.first_peak(*rdfs[3]) == (rows[3]["peak_position"], rows[3]["peak_height"])
    assert rows[2]["temperature"] == pytest.approx(np.mean(from_velocities[200:300]))

    heating = oscillating(6.0, frames=500)
    base = heating.positions.mean(axis=0)
    growth = np.linspace(1.0, 2.0, 500)[:, None, None]
    heating.positions = base + growth * (heating.positions - base)
    heating.velocities = None  # no velocities, no stored temperatures: T unknown
    rows, _ = analysis.drift(heating, analysis.temperatures(heating, n_dof), windows=5)
    fluctuation = [row["rms_fluctuation"] for row in rows]
    heights = [row["peak_height"] for row in rows]
    assert np.all(np.diff(fluctuation) > 0) and fluctuation[-1] > 1.6 * fluctuation[0]
    assert np.all(np.diff(heights) < 0) and rows[-1]["rdf_difference_from_first"] > 0.2
    assert rows[0]["temperature"] is None
    assert rows[-1]["rdf_difference_from_first"] > 3 * rows[-1]["rdf_noise"] > 0  # real drift
    with pytest.raises(ValueError, match="cannot be cut into 5 stretches"):
        analysis.drift(analysis.select_frames(heating, np.arange(9)), None, windows=5)


def _joined(a: TrajectoryData, b: TrajectoryData) -> TrajectoryData:
    def cat(x, y):
        return None if x is None else np.concatenate([x, y])

    return dataclasses.replace(
        a, **{f: cat(getattr(a, f), getattr(b, f))
              for f in ("positions", "velocities", "cells", "times", "temperatures")},
    )  # fmt: skip


def test_pooled_runs_give_the_rdf_of_all_their_frames_and_average_the_spectra():
    """Independent runs pooled: the RDF equals one over all their frames (frame-weighted,
    unequal lengths), the spectrum is each run's own (no window across the join),
    averaged; a run compared with itself scores zero and one; the count is reported."""
    a, b = oscillating(6.0, frames=600), oscillating(4.0, frames=300)
    b = dataclasses.replace(b, positions=b.positions + 0.03)  # another structure
    r, g = analysis.pooled_rdf([a, b])
    r_all, g_all = analysis.rdf(_joined(a, b))
    np.testing.assert_allclose(r, r_all)
    np.testing.assert_allclose(g, g_all, atol=1e-9)
    nu, d = analysis.pooled_vdos([a, b])
    (_, d_a), (_, d_b) = analysis.vdos(a, 1500.0), analysis.vdos(b, 1500.0)
    np.testing.assert_allclose(d, (600 * d_a + 300 * d_b) / 900)
    assert d[np.argmin(abs(nu - 6.0))] > 0 and d[np.argmin(abs(nu - 4.0))] > 0
    same = analysis.compare([a, b], [a, b], 3 * len(a.masses) - 3)
    assert same["rdf_integrated_abs_difference"] == 0.0
    assert same["vdos_overlap"] == pytest.approx(1.0)
    assert same["runs"] == {"test": 2, "reference": 2}
    one = analysis.compare(a, [a, b], 3 * len(a.masses) - 3)
    assert one["runs"] == {"test": 1, "reference": 2} and one["vdos_overlap"] < 0.9


def test_pooling_runs_of_other_systems_or_frame_steps_is_refused():
    a = oscillating(6.0, frames=600)
    slower = oscillating(6.0, frames=600, dt=10.0)
    with pytest.raises(ValueError, match="frame step"):
        analysis.pooled_vdos([a, slower])
    small = dataclasses.replace(a, cells=a.cells * 0.8, positions=a.positions * 0.8)
    with pytest.raises(ValueError, match="one system"):
        analysis.pooled_rdf([a, small])
    with pytest.raises(ValueError, match="at least one run"):
        analysis.compare([], a, 3)
