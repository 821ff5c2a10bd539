"""Phonon-mode temperatures: the harmonic modes of EMT copper, and equipartition read
from canonical harmonic samples, with one band heated."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from trajcast_engine.analysis import TrajectoryData
from trajcast_engine.phonons import (
    EV_PER_AMU_A2_FS2,
    KB,
    band_means,
    harmonic_modes,
    mode_temperatures,
)


@pytest.fixture(scope="module")
def copper_modes():
    lattice = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms
    return lattice, harmonic_modes(lattice, EMT())


def test_emt_copper_modes_are_physical(copper_modes):
    lattice, modes = copper_modes
    assert modes.frequencies.shape == (3 * 32 - 3,)
    # EMT copper: the zone-boundary longitudinal phonons near 7-8 THz (experiment: 7.3)
    assert 6.5 < modes.frequencies.max() < 8.5 and modes.frequencies.min() > 1.0
    assert np.allclose(modes.vectors.T @ modes.vectors, np.eye(93), atol=1e-10)


def harmonic_samples(modes, temperature, frames, seed, hot_band=None, factor=1.0):
    """Canonical samples of the harmonic crystal: q_k ~ N(0, kT/ω²), q̇_k ~ N(0, kT); in
    ``hot_band`` (THz range) the kinetic energy scaled by ``factor``."""
    rng = np.random.default_rng(seed)
    kt = KB * temperature
    q = rng.normal(size=(frames, len(modes.eigenvalues))) * np.sqrt(kt / modes.eigenvalues)
    qdot = rng.normal(size=q.shape) * np.sqrt(kt / EV_PER_AMU_A2_FS2)
    if hot_band is not None:
        inside = (modes.frequencies >= hot_band[0]) & (modes.frequencies < hot_band[1])
        qdot[:, inside] *= np.sqrt(factor)
    n = len(modes.sites)
    weights = 1.0 / np.sqrt(np.repeat(modes.masses, 3))
    u = (q @ modes.vectors.T * weights).reshape(frames, n, 3)
    v = (qdot @ modes.vectors.T * weights).reshape(frames, n, 3)
    shift = np.array([0.5, -0.25, 0.1])  # a rigid drift of the crystal is not heat
    return TrajectoryData(
        positions=modes.sites + u + shift, velocities=v + 1e-3,
        cells=np.repeat(modes.cell[None], frames, axis=0), times=np.arange(frames) * 20.0,
        masses=modes.masses, temperatures=None,
    )  # fmt: skip


def test_canonical_samples_read_the_temperature_in_every_band(copper_modes):
    _, modes = copper_modes
    t_pot, t_kin = mode_temperatures(harmonic_samples(modes, 300.0, 2000, seed=1), modes)
    edges = [0, 4, 5.5, 9]
    for values in (t_pot, t_kin):
        counts, means = band_means(modes, values, edges)
        assert counts.sum() == 93
        assert np.allclose(means, 300.0, rtol=0.03)  # 2000 frames x 20-40 modes a band


def test_a_heated_band_reads_hot_and_the_others_do_not(copper_modes):
    _, modes = copper_modes
    data = harmonic_samples(modes, 300.0, 2000, seed=2, hot_band=(5.5, 9.0), factor=1.2)
    t_pot, t_kin = mode_temperatures(data, modes)
    _, kinetic = band_means(modes, t_kin, [0, 5.5, 9])
    _, potential = band_means(modes, t_pot, [0, 5.5, 9])
    assert kinetic[1] == pytest.approx(360.0, rel=0.03)
    assert kinetic[0] == pytest.approx(300.0, rel=0.03)
    assert np.allclose(potential, 300.0, rtol=0.03)


def test_bad_input_is_refused(copper_modes):
    lattice, modes = copper_modes
    with pytest.raises(ValueError, match="needs a calculator"):
        harmonic_modes(lattice)
    data = harmonic_samples(modes, 300.0, 3, seed=0)
    with pytest.raises(ValueError, match="the run has 31 atoms, the lattice 32"):
        mode_temperatures(
            TrajectoryData(data.positions[:, 1:], data.velocities[:, 1:], data.cells,
                           data.times, data.masses[1:], None),
            modes,
        )  # fmt: skip
    data.velocities = None
    with pytest.raises(ValueError, match="no velocities"):
        mode_temperatures(data, modes)
