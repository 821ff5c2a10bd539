"""Reference MD generation, training pairs and forecaster training on a small system."""

from __future__ import annotations

from pathlib import Path

import mdtraj
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from conftest import cut_frames

from trajcast_engine.data.pairs import (
    build_pairs,
    load_trajectory,
    pairs_from_frames,
    split_by_trajectory,
)
from trajcast_engine.data.reference_md import (
    ReferenceSettings,
    finished_segment,
    make_calculator,
    run_reference_md,
)
from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster
from trajcast_engine.nn.model_io import load_model
from trajcast_engine.train.fit_forecaster import (
    ForecastFitSettings,
    _recorded_path,
    evaluate_forecaster,
    fit_forecaster,
)


def small_copper() -> Atoms:
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)


SETTINGS = dict(
    temperature=600.0,
    md_timestep=2.0,
    equilibration_steps=40,
    segments=3,
    segment_steps=60,
    decorrelation_steps=20,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    paths = run_reference_md(small_copper(), "emt", ReferenceSettings(**SETTINGS), out / "cu.h5")
    return paths


def test_reference_md_files_load_and_nve_segments_conserve_energy(reference):
    assert [p.name for p in reference] == ["cu_seg0.h5", "cu_seg1.h5", "cu_seg2.h5"]
    traj = mdtraj.load(str(reference[0]))
    assert traj.n_frames == 61 and traj.n_atoms == 32
    frames = load_trajectory(reference[1])
    assert frames[-1].info["time_fs"] - frames[0].info["time_fs"] == pytest.approx(120.0)
    total = [a.get_potential_energy() + a.get_kinetic_energy() for a in frames]
    assert np.ptp(total) < 5e-3 * len(frames[0])  # eV: NVE at a 2 fs step
    assert np.std([a.get_temperature() for a in frames]) > 0  # it moved


def test_reference_md_is_seeded(tmp_path):
    settings = ReferenceSettings(**{**SETTINGS, "segments": 1, "segment_steps": 10})
    a = run_reference_md(small_copper(), "emt", settings, tmp_path / "a.h5")[0]
    b = run_reference_md(small_copper(), "emt", settings, tmp_path / "b.h5")[0]
    other = ReferenceSettings(**{**SETTINGS, "segments": 1, "segment_steps": 10, "seed": 1})
    c = run_reference_md(small_copper(), "emt", other, tmp_path / "c.h5")[0]
    pa, pb, pc = (load_trajectory(p)[-1].positions for p in (a, b, c))
    assert np.array_equal(pa, pb) and not np.allclose(pa, pc)


def test_a_finished_reference_is_recognised_and_nothing_else(tmp_path):
    """finished_segment (validate_forecaster.py --reuse-references): a kept reference is
    reused only when its provenance records the same calculator, parameters and settings
    and it holds every frame."""
    import dataclasses

    settings = ReferenceSettings(temperature=300.0, md_timestep=2.0, equilibration_steps=5,
                                 segments=1, segment_steps=12, write_every=3,
                                 production="csvr", seed=4)  # fmt: skip
    path = tmp_path / "reference_300K.h5"
    (written,) = run_reference_md(small_copper(), "emt", settings, path)
    assert finished_segment(path, "emt", settings) == written
    assert finished_segment(path, "asap-emt", settings) is None
    assert finished_segment(path, "emt", dataclasses.replace(settings, seed=5)) is None
    assert finished_segment(path, "emt", dataclasses.replace(settings, segment_steps=15)) is None
    assert finished_segment(path, "emt", settings, parameters={"asap_cutoff": True}) is None
    cut_frames(written, 2)  # as a killed run leaves it: fewer frames
    assert finished_segment(path, "emt", settings) is None
    assert finished_segment(tmp_path / "missing.h5", "emt", settings) is None


def test_calculator_names_and_bad_names():
    assert type(make_calculator("emt")).__name__ == "EMT"
    assert type(make_calculator("lj", sigma=3.4)).__name__ == "LennardJones"
    assert type(make_calculator("ase.calculators.emt:EMT")).__name__ == "EMT"
    with pytest.raises(ValueError, match="unknown calculator 'xtb'"):
        make_calculator("xtb")
    with pytest.raises(ValueError, match="cannot import calculator"):
        make_calculator("nowhere.module:Calc")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ReferenceSettings(temperature=0)


def frames_crossing_the_boundary() -> list[Atoms]:
    """Two frames 10 fs apart in which atom 0 crosses the cell face and is wrapped."""
    cell = np.diag([5.0, 5.0, 5.0])
    a = Atoms("CuAg", positions=[[4.95, 1.0, 1.0], [2.0, 2.0, 2.0]], cell=cell, pbc=True)
    a.set_velocities(np.array([[0.01, 0, 0], [0, 0.02, 0]]) / 0.09822694788464063)
    b = a.copy()
    b.positions = [[0.05, 1.0, 1.0], [2.0, 2.2, 2.0]]  # atom 0 moved +0.1 Å and wrapped
    b.set_velocities(np.array([[0.012, 0, 0], [0, 0.018, 0]]) / 0.09822694788464063)
    for k, atoms in enumerate((a, b)):
        atoms.info["time_fs"] = 10.0 * k
    return [a, b]


def test_pairs_use_minimum_image_and_time_reversal():
    pairs = pairs_from_frames(frames_crossing_the_boundary(), 10.0, time_reversal=True)
    forward, backward = pairs
    assert np.allclose(forward.displacements.numpy(), [[0.1, 0, 0], [0, 0.2, 0]])
    assert np.allclose(forward.velocities.numpy(), [[0.012, 0, 0], [0, 0.018, 0]])
    assert np.allclose(forward.graph.velocities.numpy(), [[0.01, 0, 0], [0, 0.02, 0]])
    assert np.allclose(backward.displacements.numpy(), -forward.displacements.numpy())
    assert np.allclose(backward.graph.velocities.numpy(), -forward.velocities.numpy())
    assert np.allclose(backward.velocities.numpy(), -forward.graph.velocities.numpy())


def test_bad_datasets_are_refused_before_training(tmp_path, reference):
    frames = frames_crossing_the_boundary()
    with pytest.raises(ValueError, match="longer than the trajectory"):
        pairs_from_frames(frames, 20.0)
    with pytest.raises(ValueError, match="not a whole number of frame spacings"):
        pairs_from_frames(frames, 15.0)
    from ase.io import write

    shuffled = [frames[0], frames[1][[1, 0]]]
    write(tmp_path / "bad.extxyz", shuffled)
    with pytest.raises(ValueError, match="frame 1 has a different species order"):
        load_trajectory(tmp_path / "bad.extxyz", frame_interval_fs=10.0)
    write(tmp_path / "good.extxyz", frames)
    with pytest.raises(ValueError, match="pass frame_interval_fs"):
        load_trajectory(tmp_path / "good.extxyz")
    pairs = build_pairs([reference[0]], 10.0)
    with pytest.raises(ValueError, match="at least two trajectories"):
        split_by_trajectory(pairs, 0.3)


def write_lammps_dump(path, frames, steps, elements: bool, seed: int = 0) -> None:
    """A LAMMPS text dump in metal units (Å, Å/ps), atoms in a shuffled order per frame."""
    rng = np.random.default_rng(seed)
    lines = []
    for atoms, step in zip(frames, steps, strict=True):
        lengths = atoms.cell.lengths()
        columns = "id type element x y z vx vy vz" if elements else "id type x y z vx vy vz"
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(atoms)),
                  "ITEM: BOX BOUNDS pp pp pp", *(f"0 {x:.10f}" for x in lengths),
                  f"ITEM: ATOMS {columns}"]  # fmt: skip
        velocities = atoms.get_velocities() * units.fs * 1000.0  # Å/ps
        for i in rng.permutation(len(atoms)):
            element = f" {atoms.get_chemical_symbols()[i]}" if elements else ""
            x, v = atoms.positions[i], velocities[i]
            lines.append(f"{i + 1} 1{element} {x[0]:.10f} {x[1]:.10f} {x[2]:.10f} "
                         f"{v[0]:.10f} {v[1]:.10f} {v[2]:.10f}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def test_lammps_dumps_give_the_same_pairs_as_the_engines_files(tmp_path, reference):
    frames = load_trajectory(reference[0])
    interval = frames[1].info["time_fs"] - frames[0].info["time_fs"]
    steps = [1000 + 5 * k for k in range(len(frames))]  # every 5 MD steps
    write_lammps_dump(tmp_path / "types.lammpstrj", frames, steps, elements=False)
    write_lammps_dump(tmp_path / "named.lammpstrj", frames, steps, elements=True, seed=1)
    expected = build_pairs([reference[0]], 10.0)
    for name, types in (("types.lammpstrj", ["Cu"]), ("named.lammpstrj", None)):
        pairs = build_pairs([tmp_path / name], 10.0, frame_interval_fs=interval,
                            lammps_types=types)  # fmt: skip
        assert len(pairs) == len(expected)
        for got, want in zip(pairs, expected, strict=True):
            assert got.graph.species.tolist() == want.graph.species.tolist()
            assert np.allclose(got.displacements.numpy(), want.displacements.numpy(), atol=1e-8)
            assert np.allclose(got.velocities.numpy(), want.velocities.numpy(), atol=1e-10)
    with pytest.raises(ValueError, match="LAMMPS dump of atom types, not elements"):
        load_trajectory(tmp_path / "types.lammpstrj", frame_interval_fs=interval)
    with pytest.raises(ValueError, match="has atom types \\[1\\] but lammps_types names 0"):
        load_trajectory(tmp_path / "types.lammpstrj", interval, lammps_types=[])
    with pytest.raises(ValueError, match="'Qx' is not an element"):
        load_trajectory(tmp_path / "types.lammpstrj", interval, lammps_types=["Qx"])
    uneven = steps[:3] + [s + 1 for s in steps[3:]]  # one frame dumped a step late
    write_lammps_dump(tmp_path / "uneven.lammpstrj", frames, uneven, elements=True)
    with pytest.raises(ValueError, match="not evenly spaced"):
        build_pairs([tmp_path / "uneven.lammpstrj"], 10.0, frame_interval_fs=interval)


def test_split_by_trajectory_keeps_segments_whole(reference):
    pairs = build_pairs(reference, 10.0, every=2)
    training, validation = split_by_trajectory(pairs, 0.3, seed=1)
    held = {p.trajectory for p in validation}
    assert len(held) == 1 and held.isdisjoint({p.trajectory for p in training})
    assert len(training) + len(validation) == len(pairs)


def test_fitting_improves_the_forecast_and_saves_the_stride(tmp_path, reference):
    config = ForecasterConfig(
        species=[29],
        cutoff=4.0,
        lmax=1,
        channels=8,
        num_layers=2,
        radial_hidden=16,
        md_timestep=2.0,
        stride=5,
    )
    settings = ForecastFitSettings(
        epochs=4, batch_size=4, learning_rate=5e-3, validation_fraction=0.3, every=2
    )
    pairs = build_pairs(reference, config.timestep, every=2, time_reversal=True)
    training, validation = split_by_trajectory(pairs, 0.3, seed=0)
    result = fit_forecaster((training, validation), config, settings, checkpoint=tmp_path / "f.pt")
    untrained = TrajCastForecaster(config)
    untrained.set_normalization(
        result.model.config.avg_num_neighbors,
        result.model.config.displacement_scale,
        result.model.config.velocity_scale,
        result.model.config.max_speed,
    )
    before = evaluate_forecaster(untrained, validation, settings)
    assert result.validation["loss"] < 0.7 * before["loss"]
    assert (tmp_path / "f.pt.last").is_file()
    loaded = load_model(tmp_path / "f.pt")
    assert loaded.kind == "forecaster" and loaded.timestep == pytest.approx(10.0)
    assert loaded.metadata["training"]["pairs"] == len(training)
    assert torch.equal(
        loaded.state_dict()["readout.weight"], result.model.state_dict()["readout.weight"]
    )


def test_resumed_training_continues_exactly(tmp_path, reference):
    config = ForecasterConfig(
        species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=2.0, stride=5,
    )  # fmt: skip
    pairs = build_pairs(reference, config.timestep, every=3)
    split = split_by_trajectory(pairs, 0.3, seed=0)

    def settings(epochs):
        return ForecastFitSettings(epochs=epochs, batch_size=4, ema_decay=0.9, lr_patience=1)

    straight = fit_forecaster(split, config, settings(4), checkpoint=tmp_path / "a.pt")
    fit_forecaster(split, config, settings(2), checkpoint=tmp_path / "b.pt")
    resumed = fit_forecaster(split, config, settings(4), checkpoint=tmp_path / "b.pt", resume=True)
    assert [round(r["val_loss"], 12) for r in resumed.history] == [
        round(r["val_loss"], 12) for r in straight.history
    ]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit_forecaster(split, config, settings(2), checkpoint=tmp_path / "c.pt", resume=True)
    state = torch.load(tmp_path / "b.pt.state", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["amsgrad"] is True  # the default
    plain = ForecastFitSettings(epochs=1, batch_size=4, amsgrad=False)
    fit_forecaster(split, config, plain, checkpoint=tmp_path / "d.pt")
    state = torch.load(tmp_path / "d.pt.state", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["amsgrad"] is False


def test_noise_training_and_fine_tuning_from_a_model_file(tmp_path, reference):
    config = ForecasterConfig(
        species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=2.0, stride=5,
    )  # fmt: skip
    split = split_by_trajectory(build_pairs(reference, config.timestep, every=3), 0.3, seed=0)
    first = fit_forecaster(split, config, ForecastFitSettings(epochs=2, batch_size=4),
                           checkpoint=tmp_path / "a.pt")  # fmt: skip
    tuned = ForecastFitSettings(epochs=1, batch_size=4, position_noise=0.02, learning_rate=1e-4,
                                init_from=str(tmp_path / "a.pt"))  # fmt: skip
    second = fit_forecaster(split, config, tuned)
    # fine-tuning starts from the first model (a small step away), not from scratch
    assert second.validation["loss"] < 1.5 * first.validation["loss"]
    before = first.model.state_dict()["readout.weight"]
    after = second.model.state_dict()["readout.weight"]
    assert 0 < float((after - before).abs().max()) < 0.1 * float(before.abs().max())
    wrong = ForecasterConfig(**{**config.to_dict(), "stride": 4})
    with pytest.raises(ValueError, match="not a forecaster with the stride 8 fs"):
        fit_forecaster(split, wrong, tuned)


def test_a_model_file_records_its_sources_relative_to_the_working_directory(
    tmp_path, reference, monkeypatch
):
    # a shipped model names runs/..., not the absolute path on the machine that trained it
    config = ForecasterConfig(
        species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=2.0, stride=5,
    )  # fmt: skip
    sources = [str(Path(p).resolve()) for p in reference]
    root = Path(sources[0]).parent.parent
    monkeypatch.chdir(root)
    settings = ForecastFitSettings(epochs=1, batch_size=4, every=3, validation_fraction=0.3)
    fit_forecaster(sources, config, settings, checkpoint=tmp_path / "f.pt")
    recorded = load_model(tmp_path / "f.pt").metadata["training"]["sources"]
    assert recorded == [str(Path(s).relative_to(root)) for s in sources]
    assert all(not Path(r).is_absolute() and Path(r).is_file() for r in recorded)
    # outside the working directory a path stays absolute
    monkeypatch.chdir(tmp_path)
    assert _recorded_path(sources[0]) == sources[0]


def test_noise_scaled_to_the_thermal_amplitude_follows_each_frames_temperature():
    """noise_temperature: each system's noise σ scales as sqrt(T_s / T₀) (or as the power
    noise_exponent), T_s its kinetic temperature over 3N (ASE's count for unconstrained
    atoms)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from trajcast_engine.graph.ase_convert import from_atoms
    from trajcast_engine.train.fit_forecaster import noise_scales

    frames = [
        bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2),
        Atoms("Ar3H", positions=np.eye(4, 3)),
    ]
    for atoms, t in zip(frames, (300.0, 900.0), strict=True):
        MaxwellBoltzmannDistribution(atoms, temperature_K=t, rng=np.random.default_rng(1))
    graph = from_atoms(frames)
    scales = noise_scales(graph, 300.0)
    expected = [np.sqrt(atoms.get_temperature() / 300.0) for atoms in frames]
    assert torch.allclose(scales[:32], torch.tensor(expected[0], dtype=scales.dtype))
    assert torch.allclose(scales[32:], torch.tensor(expected[1], dtype=scales.dtype))
    assert len(scales) == 36 and abs(expected[1] - expected[0]) > 0.1
    # noise_exponent p: (T_s / T₀)^p, the square root by default
    steeper = noise_scales(graph, 300.0, 0.8)
    ratio = [atoms.get_temperature() / 300.0 for atoms in frames]
    assert torch.allclose(steeper[0], torch.tensor(ratio[0] ** 0.8, dtype=scales.dtype))
    assert torch.allclose(steeper[-1], torch.tensor(ratio[1] ** 0.8, dtype=scales.dtype))
    with pytest.raises(ValueError, match="noise_temperature must be > 0 K"):
        ForecastFitSettings(position_noise=0.01, noise_temperature=0.0)
    with pytest.raises(ValueError, match="noise_exponent must be >= 0"):
        ForecastFitSettings(position_noise=0.01, noise_temperature=300.0, noise_exponent=-1)


@pytest.mark.parametrize("production", ["csvr", "langevin"])
def test_thermostatted_reference_holds_a_molecules_internal_temperature(tmp_path, production):
    """Validation references (CSVR or Langevin production) of a cluster in vacuum: the
    internal motion (3N - 6, what the analysis counts) sits at the target temperature and
    the conserved angular momentum stays zero. ASE's default count (3N) ran a 13-atom
    cluster 18% hot (39/33) under CSVR."""
    from ase.cluster import Icosahedron

    from trajcast_engine import analysis

    cluster = Icosahedron("Cu", 2)
    assert len(cluster) == 13
    settings = ReferenceSettings(temperature=500.0, md_timestep=2.0, equilibration_steps=200,
                                 segments=1, segment_steps=3000, write_every=5,
                                 production=production, tau=20.0, thermostat_every=5,
                                 seed=3)  # fmt: skip
    path = run_reference_md(cluster, "emt", settings, tmp_path / "cluster.h5")[0]
    data = analysis.load(path, start=20)
    series = analysis.temperatures(data, analysis.degrees_of_freedom(data))
    assert np.mean(series) == pytest.approx(500.0, rel=0.07)
    last = load_trajectory(path)[-1]
    r = last.positions - last.get_center_of_mass()
    assert np.abs(np.cross(r, last.get_momenta()).sum(axis=0)).max() < 1e-6


def test_csvr_reference_refuses_an_ase_bussi_it_cannot_correct(tmp_path, monkeypatch):
    """The degrees-of-freedom fix sets Bussi's attributes; an ASE whose Bussi lacks them
    must fail with a clear error before any MD, not silently run hot."""
    import ase.md.bussi

    class RenamedBussi(ase.md.bussi.Bussi):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self.target_kinetic_energy

    monkeypatch.setattr(ase.md.bussi, "Bussi", RenamedBussi)
    settings = ReferenceSettings(temperature=300.0, md_timestep=2.0, equilibration_steps=2,
                                 segments=1, segment_steps=4, write_every=2,
                                 production="csvr", seed=0)  # fmt: skip
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    with pytest.raises(RuntimeError, match="Bussi thermostat has no target_kinetic_energy"):
        run_reference_md(atoms, "emt", settings, tmp_path / "ref.h5")


def test_rollout_pairs_chain_the_reference_both_ways(reference):
    frames = load_trajectory(reference[0])  # a frame every 2 fs
    chained = pairs_from_frames(frames, 10.0, time_reversal=True, rollout_steps=3)
    single = pairs_from_frames(frames, 10.0, time_reversal=True)
    double = pairs_from_frames(frames, 20.0, time_reversal=True)
    triple = pairs_from_frames(frames, 30.0, time_reversal=True)
    assert len(chained) == len(triple) and chained[0].steps == 3 and single[0].steps == 1
    forward = chained[0]
    assert torch.allclose(forward.displacements, single[0].displacements)
    assert torch.allclose(forward.later_displacements[0], double[0].displacements)
    assert torch.allclose(forward.later_displacements[1], triple[0].displacements)
    assert torch.allclose(forward.later_velocities[1], triple[0].velocities)
    # reversed: from r(t + 3Δt), -v(t + 3Δt) back through t + 2Δt, t + Δt to t
    backward, (rev1, rev3) = chained[1], (single[2 * 10 + 1], triple[1])
    assert torch.allclose(backward.graph.positions, rev3.graph.positions)
    assert torch.allclose(backward.graph.velocities, rev3.graph.velocities)
    assert torch.allclose(backward.displacements, rev1.displacements)
    assert torch.allclose(backward.velocities, rev1.velocities)
    assert torch.allclose(backward.later_displacements[1], rev3.displacements)
    assert torch.allclose(backward.later_velocities[1], rev3.velocities)
    with pytest.raises(ValueError, match="do not fit in the trajectory"):
        pairs_from_frames(frames, 10.0, rollout_steps=13)
    with pytest.raises(ValueError, match="rollout_steps must be a positive integer"):
        ForecastFitSettings(rollout_steps=0)
    with pytest.raises(ValueError, match="position_noise must be >= 0"):
        ForecastFitSettings(position_noise=-0.01)


def test_rollout_loss_feeds_each_forecast_back_as_the_next_input(reference):
    from trajcast_engine.train.fit_forecaster import _loss_fn

    config = ForecasterConfig(
        species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=2.0, stride=5,
    )  # fmt: skip
    pairs = build_pairs(reference[:1], config.timestep, every=7, rollout_steps=2)[:3]
    model = TrajCastForecaster(config)
    model.set_normalization(displacement_scale=0.05, velocity_scale=0.01,
                            avg_num_neighbors=12.0, max_speed=0.05)  # fmt: skip
    model.eval()
    settings = ForecastFitSettings(rollout_steps=2)
    terms = _loss_fn(settings)(model, pairs)
    # by hand: one forecast from each start, a second from the first's output
    expected = []
    for p in pairs:
        torch.set_grad_enabled(False)
        g = p.graph.with_neighbors(config.cutoff)
        one = model(g)
        g2 = g.replace(positions=g.positions + one["displacements"], velocities=one["velocities"])
        two = model(g2.with_neighbors(config.cutoff))
        errs = [
            ((one["displacements"] - p.displacements) / 0.05,
             (one["velocities"] - p.velocities) / 0.01),
            ((one["displacements"] + two["displacements"] - p.later_displacements[0]) / 0.05,
             (two["velocities"] - p.later_velocities[0]) / 0.01),
        ]  # fmt: skip
        expected.append([float(r.pow(2).mean() + v.pow(2).mean()) for r, v in errs])
    torch.set_grad_enabled(True)
    expected = np.mean(expected, axis=0)  # same atom count per pair: batch mean = mean
    assert float(terms["loss"]) == pytest.approx(expected.mean(), rel=1e-5)
    assert float(terms["rollout_velocity_relative"]) > 0
    one_step = _loss_fn(ForecastFitSettings())(model, pairs)
    assert float(one_step["loss"]) == pytest.approx(expected[0], rel=1e-5)
    assert float(one_step["velocity_relative"]) == pytest.approx(
        float(terms["velocity_relative"]), rel=1e-6
    )
    # pairs holding fewer strides than the loss chains: refused, not silently truncated
    with pytest.raises(ValueError, match="build them with rollout_steps=3"):
        evaluate_forecaster(model, pairs, ForecastFitSettings(rollout_steps=3))
    # and a whole (tiny) fit with it: the chained error is logged each epoch
    fit = fit_forecaster(reference, config, ForecastFitSettings(epochs=1, batch_size=4, every=9,
                         rollout_steps=2, position_noise=0.01))  # fmt: skip
    assert np.isfinite(fit.history[0]["val_rollout_velocity_relative"])
    assert np.isfinite(fit.validation["rollout_velocity_relative"])


class _Flight(torch.nn.Module):
    """A stand-in forecaster: free flight over ``tau`` fs with the velocity scaled by
    ``keep`` (1: exactly time-reversible; below 1: a damping map)."""

    def __init__(self, tau: float, keep: float) -> None:
        super().__init__()
        self.tau, self.keep = tau, keep
        self.config = ForecasterConfig(species=[29], cutoff=4.0)
        self.displacement_scale, self.velocity_scale = 0.05, 0.01

    def forward(self, graph):
        return {"displacements": graph.velocities * self.tau,
                "velocities": graph.velocities * self.keep}  # fmt: skip


def test_reversibility_loss_is_zero_for_a_reversible_map_and_sees_damping(reference):
    from trajcast_engine.train.fit_forecaster import _loss_fn, _reversal_error

    graph = build_pairs(reference[:1], 10.0, every=7)[0].graph.with_neighbors(4.0)
    v = graph.velocities
    assert float(_reversal_error(_Flight(10.0, 1.0), graph, _Flight(10.0, 1.0)(graph))) < 1e-12
    damped = _Flight(10.0, 0.9)
    # run back from (r + vτ, -0.9 v): displacement -0.9 vτ, velocity -0.81 v
    expected = ((0.1 * v * 10.0 / 0.05).pow(2).mean() + (0.19 * v / 0.01).pow(2).mean()).item()
    assert float(_reversal_error(damped, graph, damped(graph))) == pytest.approx(expected, rel=1e-5)
    # in the loss: w_rev times that, reported as its own term
    pairs = build_pairs(reference[:1], 10.0, every=7)[:2]
    plain = _loss_fn(ForecastFitSettings())(damped, pairs)
    weighted = _loss_fn(ForecastFitSettings(reversibility_weight=0.5))(damped, pairs)
    assert "reversal" not in plain and float(weighted["reversal"]) > 0
    assert float(weighted["loss"]) == pytest.approx(
        float(plain["loss"]) + 0.5 * float(weighted["reversal"]), rel=1e-6
    )
    with pytest.raises(ValueError, match="reversibility_weight must be >= 0"):
        ForecastFitSettings(reversibility_weight=-1.0)


class _Known(torch.nn.Module):
    """A stand-in forecaster that returns given new velocities (and no displacement)."""

    def __init__(self, velocities: torch.Tensor) -> None:
        super().__init__()
        self.velocities = velocities
        self.config = ForecasterConfig(species=[29], cutoff=4.0)
        self.displacement_scale, self.velocity_scale = 0.05, 0.01

    def forward(self, graph):
        return {"displacements": torch.zeros_like(graph.positions), "velocities": self.velocities}


def test_variance_kept_reads_damping_and_where_it_acts(reference):
    from trajcast_engine.train.fit_forecaster import _loss_fn

    pairs = build_pairs(reference[:1], 10.0, every=7)[:2]
    exact = torch.cat([p.velocities for p in pairs])
    losses = _loss_fn(ForecastFitSettings())

    def kept(velocities):
        terms = losses(_Known(velocities), pairs)
        return float(terms["velocity_variance_kept"]), float(terms["bond_velocity_variance_kept"])

    assert kept(exact) == pytest.approx((1.0, 1.0), rel=1e-12)
    assert kept(0.99 * exact) == pytest.approx((0.9801, 0.9801), rel=1e-9)  # damped alike
    # a common drift of each system adds kinetic energy but moves no atom against another
    drift = exact + torch.tensor([1e-3, 0.0, 0.0], dtype=exact.dtype)
    overall, bond = kept(drift)
    assert overall > 1.01 and bond == pytest.approx(1.0, rel=1e-12)


def test_mode_balance_is_zero_for_exact_forecasts_and_reads_a_damped_band(reference, tmp_path):
    from ase.io import write

    from trajcast_engine.train.fit_forecaster import _loss_fn

    write(tmp_path / "lattice.extxyz", small_copper())
    pairs = build_pairs(reference[:1], 10.0, every=7)[:3]
    exact = torch.cat([p.velocities for p in pairs])
    lattice = str(tmp_path / "lattice.extxyz")
    settings = ForecastFitSettings(
        mode_balance_weight=2.0,
        mode_balance_lattice=lattice,
        mode_balance_calculator="emt",
        mode_balance_bands=[0, 20],
    )
    losses = _loss_fn(settings)

    class Exact(_Known):  # the reference's displacements too
        def forward(self, graph):
            return {"displacements": torch.cat([p.displacements for p in pairs]),
                    "velocities": self.velocities}  # fmt: skip

    assert float(losses(Exact(exact), pairs)["mode_balance"]) < 1e-20
    # every velocity 1% short: the band keeps its potential energy and 98.01% of its
    # kinetic energy, which is about half of the total
    damped = losses(Exact(0.99 * exact), pairs)
    kept = 1.0 - float(damped["mode_balance"]) ** 0.5
    assert 0.985 < kept < 0.995
    plain = _loss_fn(ForecastFitSettings())(Exact(0.99 * exact), pairs)
    assert float(damped["loss"]) == pytest.approx(
        float(plain["loss"]) + 2.0 * float(damped["mode_balance"]), rel=1e-6
    )
    with pytest.raises(ValueError, match="needs mode_balance_lattice"):
        ForecastFitSettings(mode_balance_weight=1.0)


def test_mode_balance_memory_steers_by_the_running_mean_of_the_band_errors(reference, tmp_path):
    from ase.io import write

    from trajcast_engine.train.fit_forecaster import _loss_fn

    write(tmp_path / "lattice.extxyz", small_copper())
    pairs = build_pairs(reference[:1], 10.0, every=7)[:3]
    exact = torch.cat([p.velocities for p in pairs])
    common = dict(mode_balance_weight=1.0, mode_balance_lattice=str(tmp_path / "lattice.extxyz"),
                  mode_balance_calculator="emt", mode_balance_bands=[0, 20])  # fmt: skip

    class Scaled(_Known):  # the reference's displacements, velocities scaled by a parameter
        def __init__(self, factor: float) -> None:
            super().__init__(exact)
            self.factor = torch.nn.Parameter(torch.tensor(factor, dtype=exact.dtype))

        def forward(self, graph):
            return {"displacements": torch.cat([p.displacements for p in pairs]),
                    "velocities": self.factor * self.velocities}  # fmt: skip

    def error(factor: float) -> float:  # the band's energy error, (Ê / E - 1) < 0
        with torch.no_grad():
            terms = _loss_fn(ForecastFitSettings(**common))(Scaled(factor), pairs)
        return -(float(terms["mode_balance"]) ** 0.5)

    e1, e2 = error(0.99), error(0.98)
    losses = _loss_fn(ForecastFitSettings(mode_balance_memory=0.75, **common))
    first = losses(Scaled(0.99), pairs)["mode_balance"]
    assert float(first.detach()) == pytest.approx(2 * e1 * e1, rel=1e-6)  # memory starts at e1
    model = Scaled(0.98)
    second = losses(model, pairs)["mode_balance"]
    remembered = 0.75 * e1 + 0.25 * e2
    assert float(second.detach()) == pytest.approx(2 * remembered * e2, rel=1e-6)
    second.backward()  # the gradient is 2 m de/dfactor with the remembered error m fixed
    step = 1e-6
    slope = (error(0.98 + step) - error(0.98 - step)) / (2 * step)
    assert float(model.factor.grad) == pytest.approx(2 * remembered * slope, rel=1e-4)
    # validation (the model in eval mode) reads this batch's squared error, memory untouched
    read = losses(Scaled(0.98).eval(), pairs)["mode_balance"].detach()
    assert float(read) == pytest.approx(e2 * e2)
    assert float(losses(Scaled(0.98), pairs)["mode_balance"].detach()) == pytest.approx(
        2 * (0.75 * remembered + 0.25 * e2) * e2, rel=1e-6
    )
    with pytest.raises(ValueError, match="mode_balance_memory"):
        ForecastFitSettings(mode_balance_memory=1.0)


def test_pairs_from_states_match_the_reference_trajectorys_own_pairs(reference):
    from trajcast_engine.data.relabel import pairs_from_states

    frames = load_trajectory(reference[1])  # NVE, a frame every 2 fs MD step
    states = frames[0:40:10]
    ours = pairs_from_states(states, "emt", 2.0, 5, time_reversal=True, trajectory=3)
    theirs = pairs_from_frames(frames[:41], 10.0, every=10, time_reversal=True)
    assert len(ours) == len(theirs) == 2 * len(states)
    for a, b in zip(ours, theirs, strict=True):
        assert a.trajectory == 3
        assert torch.allclose(a.graph.positions, b.graph.positions, atol=1e-6)
        assert torch.allclose(a.displacements, b.displacements, atol=1e-5)
        assert torch.allclose(a.velocities, b.velocities, atol=1e-6)
    # they join the training split only, beside the trajectories' own pairs
    config = ForecasterConfig(species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1,
                              radial_hidden=8, md_timestep=2.0, stride=5)  # fmt: skip
    split = split_by_trajectory(build_pairs(reference, config.timestep, every=3), 0.3, seed=0)
    fit = fit_forecaster(split, config, ForecastFitSettings(epochs=1, batch_size=4),
                         extra_training=ours)  # fmt: skip
    held = fit.model.metadata["training"]
    assert held["pairs"] == len(split[0]) + len(ours)
    assert held["validation_pairs"] == len(split[1])
    still = states[0].copy()
    still.set_momenta(None)
    with pytest.raises(ValueError, match="state 1 has no velocities"):
        pairs_from_states([states[0], still], "emt", 2.0, 5)


def test_resumed_training_continues_the_band_terms_memory(tmp_path, reference):
    from ase.io import write

    write(tmp_path / "lattice.extxyz", small_copper())
    config = ForecasterConfig(
        species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1, radial_hidden=8,
        md_timestep=2.0, stride=5,
    )  # fmt: skip
    split = split_by_trajectory(build_pairs(reference, config.timestep, every=3), 0.3, seed=0)

    def settings(epochs):
        return ForecastFitSettings(
            epochs=epochs, batch_size=4, mode_balance_weight=1.0, mode_balance_memory=0.9,
            mode_balance_lattice=str(tmp_path / "lattice.extxyz"), mode_balance_calculator="emt",
            mode_balance_bands=[0, 5, 20],
        )  # fmt: skip

    straight = fit_forecaster(split, config, settings(3), checkpoint=tmp_path / "a.pt")
    fit_forecaster(split, config, settings(2), checkpoint=tmp_path / "b.pt")
    saved = torch.load(tmp_path / "b.pt.state", weights_only=True)["loss_state"]
    assert saved["mode_balance_memory"].shape == (2,)  # one running error per band
    resumed = fit_forecaster(split, config, settings(3), checkpoint=tmp_path / "b.pt", resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
