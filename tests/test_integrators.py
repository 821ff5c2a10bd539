"""The learned integrators: no force calls, canonical thermostats, seeds, the guard,
batched replicas, ramps, energy rescaling and the ASE protocol."""

from __future__ import annotations

import math

import h5py
import mdtraj
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from scipy import stats
from torch import nn

from integrators import (
    CSVR,
    ForecastCSVR,
    ForecastLangevin,
    ForecastLogger,
    ForecastNVE,
    ForecastRollout,
    Langevin,
    RolloutInstability,
    StabilityGuard,
    TemperatureSchedule,
)
from integrators.kinetics import (
    EV_PER_AMU_A2_FS2,
    KB,
    constrained_shares,
    decompose_velocities,
    species_temperatures,
)
from trajcast_engine.graph import from_atoms
from trajcast_engine.models import shipped_model_path
from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster
from trajcast_engine.trajectory import TrajectoryWriter

FS = units.fs  # ASE time units per fs: v[Å/fs] = v_ase * FS


class HarmonicFlow(nn.Module):
    """A stand-in forecaster with a known exact flow: every Cartesian coordinate of every
    atom is a harmonic oscillator about its start site, with its own angular frequency
    ω (1/fs, incommensurate values so that the thermostat can mix them):

        x' = x cos(ωΔt) + (v/ω) sin(ωΔt),   v' = -x ω sin(ωΔt) + v cos(ωΔt)

    Momentum is not conserved (the sites hold the atoms), so all 3N degrees of freedom
    are thermal: under a correct thermostat the kinetic energy samples
    Gamma(3N / 2, k_B T)."""

    kind = "forecaster"
    dtype = torch.float64

    def __init__(self, sites: np.ndarray, dt: float, seed: int = 0):
        super().__init__()
        omega = np.random.default_rng(seed).uniform(0.05, 0.15, sites.shape)
        self.register_buffer("sites", torch.as_tensor(sites, dtype=torch.float64))
        self.register_buffer("omega", torch.as_tensor(omega))
        self.config = ForecasterConfig(
            species=[29], cutoff=1.0, md_timestep=dt, stride=1, conserve_momentum=False
        )

    timestep = property(lambda self: self.config.timestep)

    def species_index(self, z):
        return z

    def constrained_dof(self, graph):
        return torch.zeros(graph.n_systems, dtype=torch.long)

    def forward(self, graph):
        wt = self.omega * self.timestep
        x, v = graph.positions - self.sites, graph.velocities
        x_new = x * torch.cos(wt) + v / self.omega * torch.sin(wt)
        v_new = -x * self.omega * torch.sin(wt) + v * torch.cos(wt)
        return {"displacements": x_new - x, "velocities": v_new}


def oscillators(n_systems: int, n_atoms: int = 4) -> tuple[list[Atoms], np.ndarray]:
    """Far-apart Cu atoms in vacuum, at rest on their sites."""
    images = []
    for _ in range(n_systems):
        a = Atoms(f"Cu{n_atoms}", positions=np.arange(n_atoms)[:, None] * [5.0, 0, 0])
        a.set_momenta(np.zeros((n_atoms, 3)))
        images.append(a)
    return images, np.concatenate([a.positions for a in images])


def oscillator_rollout(thermostat, n_systems, n_atoms=4, flow=HarmonicFlow, **flow_args):
    """``(rollout, model)``: :func:`oscillators` advanced by ``flow`` (strides of 10 fs),
    started warm, one seed per system."""
    images, sites = oscillators(n_systems, n_atoms)
    model = flow(sites, dt=10.0, **flow_args)
    graph = from_atoms(images)
    v = np.random.default_rng(0).normal(size=(len(sites), 3)) * 0.003  # start warm
    graph = graph.replace(velocities=torch.as_tensor(v))
    rollout = ForecastRollout(model, graph, thermostat=thermostat, seed=list(range(n_systems)))
    return rollout, model


def kinetic_samples(thermostat, n_systems=200, steps=300, burn=100, every=20, dof=None):
    rollout, _ = oscillator_rollout(thermostat, n_systems)
    if dof is not None:
        rollout.degrees_of_freedom = np.full(n_systems, float(dof))  # a broken count
    samples = []
    for k in range(steps):
        rollout.step()
        if k >= burn and (k - burn) % every == 0:
            samples.append(rollout.kinetic_energy())
    return np.concatenate(samples)


@pytest.mark.parametrize("make", [lambda: CSVR(600.0, 100.0), lambda: Langevin(600.0, 100.0)])
def test_thermostat_samples_the_canonical_kinetic_energy(make):
    kinetic = kinetic_samples(make())
    n_dof, kt = 3 * 4, KB * 600.0
    canonical = stats.gamma(a=n_dof / 2, scale=kt)
    n = len(kinetic)
    assert abs(kinetic.mean() - canonical.mean()) < 5 * canonical.std() / math.sqrt(n)
    var_se = canonical.var() * math.sqrt(2.0 / n) * 2.0  # generous: excess kurtosis
    assert abs(kinetic.var() - canonical.var()) < 4 * var_se
    assert stats.kstest(kinetic, canonical.cdf).pvalue > 1e-3


class BiasedFlow(HarmonicFlow):
    """The exact oscillators with a small per-stride energy bias, as a learned step has:
    the velocities of the first half of each system's atoms come out with kinetic energy
    scaled by ``1 - eps``, the rest by ``1 + eps``."""

    def __init__(self, sites: np.ndarray, dt: float, atoms_per_system: int, eps: float):
        super().__init__(sites, dt)
        damped = (np.arange(len(sites)) % atoms_per_system) < atoms_per_system // 2
        gain = np.where(damped, math.sqrt(1.0 - eps), math.sqrt(1.0 + eps))
        self.register_buffer("gain", torch.as_tensor(gain)[:, None])
        self.damped = damped

    def forward(self, graph):
        out = super().forward(graph)
        return {**out, "velocities": out["velocities"] * self.gain}


def group_temperatures(thermostat, eps=0.01, n_systems=20, n_atoms=4, steps=1500, burn=500):
    """Mean kinetic temperatures (K) of the damped and the boosted atoms under a
    :class:`BiasedFlow` rollout."""
    rollout, model = oscillator_rollout(
        thermostat, n_systems, n_atoms, BiasedFlow, atoms_per_system=n_atoms, eps=eps
    )
    masses = rollout.graph.masses.numpy()
    sums = np.zeros(2)
    for k in range(steps):
        rollout.step()
        if k >= burn:
            kinetic = 0.5 * masses * (rollout.graph.velocities.numpy() ** 2).sum(1)
            sums += [kinetic[model.damped].sum(), kinetic[~model.damped].sum()]
    per_atom = sums * EV_PER_AMU_A2_FS2 / ((steps - burn) * len(masses) / 2)
    return per_atom / (1.5 * KB)


def test_a_local_thermostat_holds_every_mode_of_a_biased_step_a_global_one_cannot():
    """Why a crystal forecaster runs under Langevin: a learned step that leaves one set of
    modes' kinetic energy 1% short a stride and another's 1% over (copper's phonon bands
    differ by 1-5e-4). Langevin (τ = 10 strides) couples each degree of freedom to the
    bath, which bounds a set's offset to about its bias times the strides the bath takes
    to restore it (here ±5%); CSVR rescales all alike, so with no coupling between the
    modes the damped set drains into the boosted one."""
    damped, boosted = group_temperatures(Langevin(300.0, 100.0))
    assert damped == pytest.approx(300.0, rel=0.08) and boosted == pytest.approx(300.0, rel=0.08)
    assert damped < boosted  # the bias is still visible, bounded by τ
    damped, boosted = group_temperatures(CSVR(300.0, 100.0))
    assert damped < 0.5 * 300.0 and boosted > 1.4 * 300.0


def test_the_canonical_check_catches_a_wrong_degree_of_freedom_count():
    """The same test fails for a thermostat that counts 3N - 3 instead of 3N."""
    kinetic = kinetic_samples(CSVR(600.0, 100.0), dof=9)
    canonical = stats.gamma(a=3 * 4 / 2, scale=KB * 600.0)
    assert stats.kstest(kinetic, canonical.cdf).pvalue < 1e-6


def small_forecaster(seed: int = 0) -> TrajCastForecaster:
    torch.manual_seed(seed)
    config = ForecasterConfig(
        species=[29],
        cutoff=4.0,
        channels=4,
        num_layers=1,
        radial_hidden=8,
        avg_num_neighbors=12.0,
        md_timestep=2.0,
        stride=10,
        displacement_scale=0.02,
        velocity_scale=0.005,
    )
    return TrajCastForecaster(config).eval()


def copper(seed: int = 0, temperature: float = 300.0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(KB * temperature / atoms.get_masses())  # ASE units: sqrt(eV/amu)
    p = rng.normal(size=(len(atoms), 3)) * sigma[:, None] * atoms.get_masses()[:, None]
    atoms.set_momenta(p - p.mean(0))
    return atoms


class CountingCalculator(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        self.calls += 1
        raise AssertionError("a learned integrator asked for " + ", ".join(properties))


def test_a_rollout_makes_no_calculator_call(tmp_path):
    atoms = copper()
    calc = CountingCalculator()
    atoms.calc = calc
    dyn = ForecastCSVR(atoms, small_forecaster(), temperature_K=300, seed=0)
    writer = TrajectoryWriter(tmp_path / "t.h5", atoms, dynamics=dyn)
    dyn.attach(writer, interval=1)
    dyn.attach(ForecastLogger(dyn, tmp_path / "md.log"), interval=1)
    dyn.run(5)
    writer.close()
    assert calc.calls == 0
    assert dyn.nsteps == 5
    traj = mdtraj.load(str(tmp_path / "t.h5"))
    assert traj.n_frames == 6
    assert np.allclose(traj.time, np.arange(6) * 20.0 / 1000.0)  # ps, Δt = 20 fs
    log = np.loadtxt(tmp_path / "md.log")
    assert log.shape == (6, 5) and np.allclose(log[:, 3], 300.0)


def test_the_stride_is_fixed_by_the_model():
    with pytest.raises(ValueError, match=r"trained for a timestep of 20 fs.*10 fs was asked"):
        ForecastNVE(copper(), small_forecaster(), timestep=10.0)
    ForecastNVE(copper(), small_forecaster(), timestep=20.0)  # its own stride is fine


def run_positions(cls, seed, steps=4, **kw):
    atoms = copper(seed=11)
    dyn = cls(atoms, small_forecaster(), seed=seed, **kw)
    dyn.run(steps)
    return atoms.positions.copy(), atoms.get_velocities().copy()


@pytest.mark.parametrize("cls", [ForecastCSVR, ForecastLangevin])
def test_same_seed_same_trajectory_and_different_seeds_differ(cls):
    a = run_positions(cls, 5, temperature_K=400)
    b = run_positions(cls, 5, temperature_K=400)
    c = run_positions(cls, 6, temperature_K=400)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])


def test_batched_replicas_equal_single_rollouts():
    model = small_forecaster()
    images = [copper(seed=k, temperature=t) for k, t in enumerate((200.0, 400.0, 600.0))]
    targets = [250.0, 450.0, 650.0]
    batch = ForecastRollout(
        model, from_atoms(images), thermostat=CSVR(targets, 100.0), seed=[7, 8, 9]
    )
    batch.run(5)
    n = len(images[0])
    for k, atoms in enumerate(images):
        single = ForecastRollout(
            model, from_atoms(atoms), thermostat=CSVR(targets[k], 100.0), seed=7 + k
        )
        single.run(5)
        rows = slice(k * n, (k + 1) * n)
        for name in ("positions", "velocities"):
            got = getattr(batch.graph, name)[rows]
            want = getattr(single.graph, name)
            assert torch.allclose(got, want, rtol=0, atol=1e-10), name


class Unstable(nn.Module):
    """Wraps a forecaster and breaks it from step ``at`` on, in a chosen way."""

    kind = "forecaster"

    def __init__(self, inner, how: str, at: int):
        super().__init__()
        self.inner, self.how, self.at, self.calls = inner, how, at, 0
        self.config, self.dtype = inner.config, inner.dtype

    timestep = property(lambda self: self.inner.timestep)

    def species_index(self, z):
        return self.inner.species_index(z)

    def constrained_dof(self, graph):
        return self.inner.constrained_dof(graph)

    def forward(self, graph):
        out = dict(self.inner(graph))
        self.calls += 1
        if self.calls >= self.at:
            if self.how == "nan":
                out["velocities"] = out["velocities"].clone()
                out["velocities"][3, 1] = float("nan")
            elif self.how == "jump":
                out["displacements"] = out["displacements"].clone()
                out["displacements"][5] = torch.tensor([0.0, 3.0, 0.0])
            else:  # heat
                out["velocities"] = out["velocities"] * 30.0
        return out


@pytest.mark.parametrize(
    "how, message",
    [
        ("nan", r"step 3: the forecast velocity of atom 3 \(Cu\) in system 0 is not finite"),
        ("jump", r"step 3: atom 5 \(Cu\) in system 0 moved 3 Å in one step \(limit 2 Å\)"),
        ("heat", r"step 3: system 0 reached a temperature of .* more than 5x the target 300 K"),
    ],
)
def test_the_guard_stops_an_unstable_model_and_keeps_the_frames(tmp_path, how, message):
    atoms = copper()
    model = Unstable(small_forecaster(), how, at=3)
    dyn = ForecastCSVR(atoms, model, temperature_K=300, seed=0, guard=StabilityGuard())
    writer = TrajectoryWriter(tmp_path / "t.h5", atoms, dynamics=dyn, flush_frames=1000)
    dyn.attach(writer, interval=1)
    with pytest.raises(RolloutInstability, match=message) as info:
        dyn.run(10)
    assert info.value.step == 3 and dyn.nsteps == 2
    assert np.all(np.isfinite(atoms.positions))  # the bad step was not committed
    # the buffered frames reached the disk although the writer was never closed
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f["coordinates"].shape[0] == 3
    writer.close()
    assert mdtraj.load(str(tmp_path / "t.h5")).n_frames == 3


def test_temperature_ramp_over_the_run():
    atoms = copper()
    dyn = ForecastCSVR(atoms, small_forecaster(), temperature_K=(300.0, 600.0), seed=0)
    seen = []
    dyn.attach(lambda: seen.append(dyn.get_target_temperature()), interval=1)
    dyn.run(6)
    assert np.allclose(seen, 300.0 + 50.0 * np.arange(7))
    schedule = TemperatureSchedule(lambda t: 100.0 + t)
    assert schedule(5.0)[0] == 105.0
    with pytest.raises(ValueError, match="positive"):
        TemperatureSchedule(-5.0)


def test_per_species_temperatures_report_equipartition_loss():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.numbers[:4] = 79  # Au on the first four sites
    atoms.set_masses()
    m = atoms.get_masses()
    v = np.random.default_rng(1).normal(size=(len(atoms), 3)) * np.sqrt(KB * 300 / m)[:, None]
    v[:4] *= 3.0  # the Au atoms run nine times hotter than equipartition allows
    v[4:] -= (m[:, None] * v).sum(0) / m[4:].sum()  # zero total momentum
    atoms.set_velocities(v)
    torch.manual_seed(0)
    model = TrajCastForecaster(ForecasterConfig(species=[29, 79], channels=4, num_layers=1))
    dyn = ForecastNVE(atoms, model)
    t = dyn.get_species_temperatures()
    mean_t = dyn.get_temperature()
    # each atom's share of the 3 removed centre-of-mass degrees of freedom is 3 m_i / M
    symbols = np.array(atoms.get_chemical_symbols())
    dof = {s: float(np.sum(3.0 - 3.0 * m[symbols == s] / m.sum())) for s in ("Au", "Cu")}
    weighted = sum(dof[s] * t[s] for s in t) / sum(dof.values())
    assert weighted == pytest.approx(mean_t, rel=1e-12)
    assert t["Au"] > 3.0 * t["Cu"]


def test_species_temperatures_of_a_molecule_at_equipartition_read_the_temperature():
    """Maxwell-Boltzmann velocities of alanine dipeptide, its centre-of-mass motion and
    rotation removed: every element reads 300 K once each atom is charged its own share
    of the six removed degrees of freedom (an even share reads H 7% hot, C
    and O 9-15% cold)."""
    from ase.io import read

    from trajcast_engine.models import system_file

    molecule = read(system_file("ala2-amber-forecaster"))
    n, copies = len(molecule), 6000
    masses = torch.tensor(molecule.get_masses()).repeat(copies)
    positions = torch.tensor(molecule.positions).repeat(copies, 1)
    species = torch.tensor(molecule.numbers).repeat(copies)
    system_idx = torch.arange(copies).repeat_interleave(n)
    generator = torch.Generator().manual_seed(5)
    sigma = torch.sqrt(KB * 300.0 / (masses * EV_PER_AMU_A2_FS2))
    v = torch.randn(n * copies, 3, generator=generator, dtype=torch.float64) * sigma[:, None]
    angular = torch.ones(copies, dtype=torch.bool)
    thermal = decompose_velocities(v, positions, masses, system_idx, copies, True, angular)[0]
    shares = constrained_shares(positions, masses, system_idx, copies, True, angular)
    assert shares[:n].sum().item() == pytest.approx(6.0, rel=1e-9)
    per_element = species_temperatures(thermal, masses, species, system_idx, copies, shares)
    for z, t in per_element.items():
        assert t.mean() == pytest.approx(300.0, rel=0.03), z
    even = species_temperatures(thermal, masses, species, system_idx, copies,
                                torch.full_like(masses, 6.0 / n))  # fmt: skip
    assert even[6].mean() < 0.95 * 300.0  # the even share misreads the heavy atoms


def test_energy_rescaling_keeps_the_total_energy():
    potential_path = shipped_model_path("cu-emt-potential")
    atoms = copper(seed=3, temperature=600.0)
    dyn = ForecastNVE(atoms, small_forecaster(), energy_rescale=potential_path)
    rescaler = dyn.rollout.rescaler
    e0 = rescaler.initial_energy.copy()
    for _ in range(4):
        dyn.run(1)
        u = rescaler.energy(dyn.rollout.graph)
        k = dyn.rollout.kinetic_energy()
        assert (u.numpy() + k) == pytest.approx(e0, rel=1e-12, abs=1e-10)
        assert dyn.rescale_factor is not None and dyn.rescale_factor > 0
    # with a thermostat, each learned step conserves the energy it started with
    atoms = copper(seed=4, temperature=600.0)
    dyn = ForecastCSVR(atoms, small_forecaster(), 600.0, energy_rescale=potential_path, seed=1)
    rescaler, rollout = dyn.rollout.rescaler, dyn.rollout
    seen = []
    original = rescaler.apply

    def spy(r, positions, velocities, target=None):
        out = original(r, positions, velocities, target)
        u = rescaler.energy(r.graph.replace(positions=positions)).numpy()
        seen.append((u + r.kinetic_energy(out), target.numpy()))
        return out

    rescaler.apply = spy
    dyn.run(3)
    for after, before in seen:
        assert after == pytest.approx(before, rel=1e-12)
    assert len(seen) == 3 and rollout.step_count == 3


def test_energy_rescaling_takes_a_calculators_name():
    """``energy_rescale="emt"`` from Python is ASE's EMT, as on the command line: its
    energy plus the kinetic stays at the initial value; an unknown ``module:Class`` is
    one clear error."""
    from ase.calculators.emt import EMT

    atoms = copper(seed=5, temperature=600.0)
    dyn = ForecastNVE(atoms, small_forecaster(), energy_rescale="emt")
    assert isinstance(dyn.rollout.rescaler.calculator, EMT)
    e0 = float(dyn.rollout.rescaler.initial_energy[0])
    dyn.run(3)
    check = atoms.copy()
    check.calc = EMT()
    total = check.get_potential_energy() + atoms.get_kinetic_energy()
    assert total == pytest.approx(e0, abs=1e-8)
    with pytest.raises(ValueError, match="nosuch"):
        ForecastNVE(copper(seed=5), small_forecaster(), energy_rescale="nosuch:Calculator")


def test_energy_rescaling_with_an_ase_calculator_equals_the_torch_model(tmp_path):
    """The exact LJ model and ASE's LJ calculator give the same rescaled rollout, as does
    asap3's compiled one (not a subclass of ASE's Calculator) where it is installed."""
    import importlib.util

    from ase.calculators.lj import LennardJones

    from trajcast_engine.data.reference_md import make_calculator
    from trajcast_engine.nn.lennard_jones import LennardJonesConfig, LennardJonesPotential

    def argon() -> Atoms:
        atoms = bulk("Ar", "fcc", a=5.4, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=1)
        atoms.set_velocities(np.random.default_rng(2).normal(size=(len(atoms), 3)) * 0.002)
        return atoms

    def forecaster() -> TrajCastForecaster:
        torch.manual_seed(0)
        config = ForecasterConfig(species=[18], channels=4, num_layers=1, lmax=1, cutoff=4.0)
        return TrajCastForecaster(config)

    lj = {"sigma": 3.4, "epsilon": 0.0104}
    exact = LennardJonesPotential(LennardJonesConfig(species=[18], cutoff=5.3, **lj))
    runs = []
    companions = [exact, LennardJones(rc=5.3, smooth=False, **lj)]
    if importlib.util.find_spec("asap3") is not None:
        companions.append(make_calculator("asap-lj", rc=5.3, **lj))
    for companion in companions:
        atoms = argon()
        dyn = ForecastNVE(atoms, forecaster(), energy_rescale=companion)
        dyn.run(3)
        runs.append((atoms.get_velocities(), dyn.rescale_factor))
    for velocities, factor in runs[1:]:
        np.testing.assert_allclose(velocities, runs[0][0], rtol=1e-9, atol=1e-12)
        assert factor == pytest.approx(runs[0][1], rel=1e-9)


def test_changed_atoms_between_runs_are_picked_up():
    atoms = copper()
    dyn = ForecastNVE(atoms, small_forecaster())
    dyn.run(1)
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    atoms.positions = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2).positions
    dyn.run(1)
    # a perfect lattice at rest stays at rest (forces are zero by symmetry and the
    # forecast of a symmetric state is symmetric)
    assert np.abs(atoms.get_velocities()).max() < 1e-8


def test_bad_input_is_refused_with_a_message():
    from ase.constraints import FixAtoms

    atoms = copper()
    atoms.set_constraint(FixAtoms([0]))
    with pytest.raises(ValueError, match="do not support ASE constraints"):
        ForecastNVE(atoms, small_forecaster())
    with pytest.raises(ValueError, match="not a forecaster"):
        ForecastNVE(copper(), shipped_model_path("cu-emt-potential"))
    with pytest.raises(ValueError, match="not trained on"):
        ForecastNVE(bulk("Ag", "fcc", a=4.1, cubic=True), small_forecaster())
    with pytest.raises(ValueError, match="tau must be a positive time"):
        ForecastCSVR(copper(), small_forecaster(), 300.0, tau=-1.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        ForecastCSVR(copper(), small_forecaster(), 0.0)
    with pytest.raises(ValueError, match="3 seeds given for 1 systems"):
        ForecastRollout(small_forecaster(), from_atoms(copper()), seed=[1, 2, 3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rollout_matches_cpu():
    model = small_forecaster()
    images = [copper(seed=k) for k in range(3)]
    runs = {}
    for device in ("cpu", "cuda"):
        m = small_forecaster().to(device)
        m.load_state_dict(model.state_dict())
        rollout = ForecastRollout(
            m, from_atoms(images), thermostat=CSVR(300.0, 200.0), seed=[1, 2, 3]
        )
        rollout.run(5)
        runs[device] = rollout.graph.positions.cpu()
    assert torch.allclose(runs["cpu"], runs["cuda"], atol=1e-8)


def test_torch_neighbour_backend_gives_the_same_rollout():
    model = small_forecaster()
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)  # 14.4 Å: three (4 + 0.5) Å wide
    atoms.set_momenta(copper(seed=2).repeat((2, 2, 2)).get_momenta())
    runs = {}
    for backend in ("numba", "torch"):
        rollout = ForecastRollout(model, from_atoms(atoms), thermostat=CSVR(300.0, 200.0),
                                  seed=3, skin=0.5, neighbor_backend=backend)  # fmt: skip
        rollout.run(6)
        assert rollout.neighbor_backend == backend
        runs[backend] = rollout.graph
    gap = runs["numba"].positions - runs["torch"].positions  # numba wraps at rebuilds
    cell = runs["numba"].cell[0]
    fractional = gap @ torch.linalg.inv(cell)
    assert torch.allclose(fractional, torch.round(fractional), atol=1e-9)
    assert torch.allclose(runs["numba"].velocities, runs["torch"].velocities, atol=1e-10)


def molecule_forecaster() -> TrajCastForecaster:
    """Untrained, float64: a mechanics check of what the thermostats leave alone."""
    torch.manual_seed(0)
    config = ForecasterConfig(
        species=[1, 6, 8], cutoff=4.0, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=0.5, stride=10, displacement_scale=0.01, velocity_scale=0.002,
        conserve_angular_momentum=True, dtype="float64",
    )  # fmt: skip
    return TrajCastForecaster(config).eval()


def spinning_ethanol() -> Atoms:
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(5)
    sigma = np.sqrt(KB * 300.0 / atoms.get_masses())
    p = rng.normal(size=(len(atoms), 3)) * sigma[:, None] * atoms.get_masses()[:, None]
    atoms.set_momenta(p - p.sum(0) * atoms.get_masses()[:, None] / atoms.get_masses().sum())
    return atoms


def rigid_parts(atoms: Atoms) -> tuple[np.ndarray, float, float]:
    """Angular momentum (amu Å²/fs), rotational and internal kinetic energy (eV), numpy."""
    m, r = atoms.get_masses(), atoms.positions - atoms.get_center_of_mass()
    v = atoms.get_velocities() * FS
    v = v - (m[:, None] * v).sum(0) / m.sum()
    spin = (m[:, None] * np.cross(r, v)).sum(0)
    inertia = (m[:, None, None] * ((r * r).sum(1)[:, None, None] * np.eye(3)
               - r[:, :, None] * r[:, None, :])).sum(0)  # fmt: skip
    rotation = np.cross(np.linalg.solve(inertia, spin), r)
    ev = units._amu * 1e10 / units._e
    k_rot = 0.5 * (m[:, None] * rotation**2).sum() * ev
    k_int = 0.5 * (m[:, None] * (v - rotation) ** 2).sum() * ev
    return spin, k_rot, k_int


@pytest.mark.parametrize("cls", [ForecastCSVR, ForecastLangevin])
def test_thermostats_leave_an_isolated_molecules_rotation_alone(cls):
    """With angular momentum kept, a molecule's rigid rotation is a conserved quantity,
    not heat: the thermostat keeps L, and the temperature counts the internal motion
    over 3N - 6 degrees of freedom (it was counted with the rotation's kinetic energy)."""
    atoms = spinning_ethanol()
    spin0, k_rot0, _ = rigid_parts(atoms)
    assert k_rot0 > 1e-3  # a real spin to keep
    dyn = cls(atoms, molecule_forecaster(), 300.0, tau=20.0, seed=2)
    for _ in range(5):
        dyn.run(1)
        spin, _, k_int = rigid_parts(atoms)
        np.testing.assert_allclose(spin, spin0, rtol=1e-8, atol=1e-12)
        internal = 2.0 * k_int / ((3 * len(atoms) - 6) * KB)
        assert dyn.get_temperature() == pytest.approx(internal, rel=1e-8)


def test_energy_rescaling_keeps_a_molecules_rotation_and_energy():
    from ase.calculators.lj import LennardJones

    atoms = spinning_ethanol()
    spin0, _, _ = rigid_parts(atoms)
    lj = LennardJones(sigma=1.0, epsilon=0.001, rc=4.0)
    dyn = ForecastNVE(atoms, molecule_forecaster(), energy_rescale=lj)
    e0 = dyn.rollout.rescaler.initial_energy.copy()
    dyn.run(3)
    spin, k_rot, k_int = rigid_parts(atoms)
    np.testing.assert_allclose(spin, spin0, rtol=1e-8, atol=1e-12)
    u = dyn.rollout.rescaler.energy(dyn.rollout.graph).numpy()
    assert u + k_rot + k_int == pytest.approx(e0, rel=1e-9)


def test_a_molecule_starts_without_rigid_rotation():
    """A fresh run's Maxwell-Boltzmann draw keeps no rotation for an isolated molecule
    whose angular momentum the forecaster keeps (nothing would ever change it: a frozen
    random spin); a periodic crystal's velocities are drawn as before."""
    from ase.build import molecule
    from ase.md.velocitydistribution import Stationary

    from trajcast_engine.data.reference_md import thermalize
    from trajcast_engine.simulate import start_velocities

    model = molecule_forecaster()
    atoms = molecule("CH3CH2OH")
    start_velocities(atoms, 300.0, 4, model)
    spin, k_rot, k_int = rigid_parts(atoms)
    np.testing.assert_allclose(spin, 0.0, atol=1e-12)
    assert k_rot < 1e-12 and k_int > 0.0
    np.testing.assert_allclose(atoms.get_momenta().sum(0), 0.0, atol=1e-12)
    free = molecule("CH3CH2OH")  # the same draw spins when the model does not keep L
    model.config.conserve_angular_momentum = False
    start_velocities(free, 300.0, 4, model)
    assert rigid_parts(free)[1] > 1e-4
    crystal, drawn = bulk("Cu", cubic=True).repeat(2), bulk("Cu", cubic=True).repeat(2)
    model.config.conserve_angular_momentum = True
    start_velocities(crystal, 300.0, 4, model)
    thermalize(drawn, 300.0, np.random.default_rng(4))
    Stationary(drawn, preserve_temperature=False)
    np.testing.assert_allclose(crystal.get_momenta(), drawn.get_momenta(), rtol=1e-10)


@pytest.mark.parametrize("periodic", [False, True])
def test_start_velocities_have_the_canonical_kinetic_energy(periodic):
    """Averaged over seeded draws, the start velocities carry ``k_B T / 2`` per degree of
    freedom left after removing the centre-of-mass motion (``3N - 3``) and, for a molecule
    in vacuum, the rotation (``3N - 6``): the removed motion is not rescaled back into the
    rest (which would start ethanol 29% hot over its 21 internal degrees of freedom)."""
    from ase.build import molecule
    from ase.units import kB

    from trajcast_engine.simulate import start_velocities

    model = molecule_forecaster()
    atoms = bulk("Cu", cubic=True) if periodic else molecule("CH3CH2OH")
    dof = 3 * len(atoms) - (3 if periodic else 6)
    draws = 3000
    ratios = []
    for seed in range(draws):
        start_velocities(atoms, 300.0, seed, model)
        ratios.append(2.0 * atoms.get_kinetic_energy() / (dof * kB * 300.0))
    error = np.sqrt(2.0 / dof / draws)  # the standard error of a chi-squared mean
    assert np.mean(ratios) == pytest.approx(1.0, abs=4.0 * error)


def test_simulate_keeps_a_molecule_from_tumbling(tmp_path):
    """``simulate`` on the shipped alanine dipeptide: every written frame has (numerically)
    no angular momentum, so the molecule's spectrum has no tumbling weight at low
    frequency the reference MD lacks."""
    from trajcast_engine.simulate import simulate
    from trajcast_engine.trajectory import TrajectoryReader

    out = tmp_path / "ala2.h5"
    simulate("ala2-amber-forecaster", None, temperature=300.0, steps=20, output=out,
             seed=2, progress=False, energy_rescale="none", equilibrate_ps=0.1)  # fmt: skip
    with TrajectoryReader(out) as reader:
        frames = reader[:]
    spin = np.array([rigid_parts(frame)[0] for frame in frames])  # amu Å²/fs
    masses = frames[0].get_masses()
    per_atom = np.sqrt(KB * 300.0 / masses.mean() / (units._amu * 1e10 / units._e))
    scale = masses.sum() * 2.0 * per_atom  # |L| of a draw: ~ M · 2 Å · v_thermal
    assert np.abs(spin).max() < 1e-5 * scale
