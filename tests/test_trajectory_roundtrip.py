"""Trajectory files: mdtraj reads them, the engine's reader round-trips them."""

from __future__ import annotations

import h5py
import mdtraj as md
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from trajcast_engine.trajectory import (
    TrajectoryReader,
    TrajectoryWriter,
    convert_trajectory,
    read_frames,
    topology_dict,
)


def thermal(atoms: Atoms, rng, temperature_k=300.0) -> Atoms:
    sigma = np.sqrt(temperature_k * units.kB / atoms.get_masses())[:, None]
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * sigma)
    return atoms


def systems(rng) -> dict[str, Atoms]:
    ortho = bulk("Cu", "fcc", a=3.61, orthorhombic=True).repeat((2, 2, 2))
    tric = bulk("Cu", "fcc", a=3.61).repeat((3, 3, 3))  # primitive fcc cell: 60° angles
    vacuum = molecule("CH3CH2OH")
    return {k: thermal(a, rng) for k, a in {"ortho": ortho, "tric": tric, "vacuum": vacuum}.items()}


def trajectory_frames(atoms: Atoms, rng, n: int = 12) -> list[Atoms]:
    frames = []
    for _ in range(n):
        a = atoms.copy()
        a.positions += rng.normal(0, 0.5, a.positions.shape) - 3.0  # many atoms outside the box
        a.set_velocities(atoms.get_velocities() + rng.normal(0, 0.001, (len(a), 3)))
        frames.append(a)
    return frames


@pytest.mark.parametrize("full_precision", [False, True])
@pytest.mark.parametrize("kind", ["ortho", "tric", "vacuum"])
def test_round_trip_through_mdtraj_and_reader(kind, full_precision, tmp_path, rng):
    atoms = systems(rng)[kind]
    frames = trajectory_frames(atoms, rng)
    path = tmp_path / f"{kind}.h5"
    with TrajectoryWriter(path, atoms, flush_frames=5, full_precision=full_precision) as writer:
        for k, a in enumerate(frames):
            writer.write_atoms(a, time_fs=2.5 * k, step=5 * k)

    traj = md.load(path)
    assert traj.n_frames == len(frames) and traj.n_atoms == len(atoms)
    positions_nm = np.array([a.positions for a in frames]) / 10
    np.testing.assert_allclose(traj.xyz, positions_nm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(traj.time, 2.5e-3 * np.arange(len(frames)), rtol=1e-6)
    if kind == "vacuum":
        assert traj.unitcell_vectors is None
    else:
        np.testing.assert_allclose(
            traj.unitcell_vectors[0] * 10, cell_in_mdtraj_frame(atoms), atol=1e-5
        )
        np.testing.assert_allclose(traj.unitcell_volumes * 1000, atoms.get_volume(), rtol=1e-5)
    with md.formats.HDF5TrajectoryFile(str(path)) as f:
        data = f.read()
    velocities = np.array([a.get_velocities() for a in frames]) * units.fs * 100  # nm/ps
    np.testing.assert_allclose(data.velocities, velocities, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        data.kineticEnergy, [a.get_kinetic_energy() * 96.485332 for a in frames], rtol=1e-5
    )

    one = md.load_frame(str(path), 7)
    np.testing.assert_allclose(one.xyz[0], positions_nm[7], atol=1e-6)

    with TrajectoryReader(path) as reader:
        assert len(reader) == len(frames)
        for k in (0, 4, 7, 9, -1):
            back, ref = reader[k], frames[k]
            # float64 for every frame, or for the last frame of each flush (4, 9, 11)
            exact = full_precision or k in (4, 9, -1)
            if exact:
                assert np.array_equal(back.positions, ref.positions)
                np.testing.assert_allclose(back.get_velocities(), ref.get_velocities(), rtol=1e-14)
            else:
                np.testing.assert_allclose(back.positions, ref.positions, rtol=1e-6, atol=1e-5)
                np.testing.assert_allclose(
                    back.get_velocities(), ref.get_velocities(), rtol=1e-6, atol=1e-9
                )
            assert np.array_equal(back.cell.array, ref.cell.array)
            assert np.array_equal(back.pbc, ref.pbc)
            assert np.array_equal(back.numbers, ref.numbers)
            assert back.info["time_fs"] == 2.5 * (k % len(frames))
            assert back.info["step"] == 5 * (k % len(frames))
        assert [a.info["step"] for a in reader[2:9:3]] == [10, 25, 40]
        assert [a.info["step"] for a in reader[::-4]] == [55, 35, 15]
        assert len(list(reader)) == len(frames)
        with pytest.raises(IndexError):
            reader[len(frames)]


def cell_in_mdtraj_frame(atoms: Atoms) -> np.ndarray:
    """mdtraj rebuilds the cell from lengths and angles in its standard orientation."""
    from ase.geometry import cellpar_to_cell

    return cellpar_to_cell(atoms.cell.cellpar())


def test_file_layout_checked_with_h5py(tmp_path, rng):
    atoms = systems(rng)["ortho"]
    atoms.calc = EMT()
    path = tmp_path / "layout.h5"
    with TrajectoryWriter(path, atoms, provenance={"model": "none", "seed": 3}) as writer:
        writer.write_atoms(time_fs=0.0)
        writer.set_rng_state({"bit_generator": "PCG64", "state": 12345})
    with TrajectoryWriter(path, atoms, mode="a") as writer:
        writer.write_atoms(time_fs=10.0, step=10)
        atoms.get_potential_energy()  # frame 0 had no energy: a ragged field is refused
        with pytest.raises(ValueError, match="has potential_energy, but the trajectory has no"):
            writer.write_atoms(time_fs=20.0, step=20)
    with h5py.File(path, "r") as f:
        assert f.attrs["conventions"] == "Pande" and f.attrs["conventionVersion"] == "1.1"
        for key in ("program", "programVersion", "title"):
            assert key in f.attrs
        assert f["topology"].shape == (1,) and f["topology"].dtype.kind == "S"
        expected = {
            "coordinates": "nanometers",
            "time": "picoseconds",
            "cell_lengths": "nanometers",
            "cell_angles": "degrees",
            "velocities": "nanometers/picosecond",
            "kineticEnergy": "kilojoules_per_mole",
            "temperature": "kelvin",
        }
        for name, unit in expected.items():
            assert f[name].attrs["units"] == unit, name
            assert f[name].dtype == np.float32 and f[name].shape[0] == 2
            assert f[name].maxshape[0] is None and f[name].chunks is not None
        for name, ds in f["trajcast"].items():
            assert "units" in ds.attrs or name in ("species", "masses"), name
        assert f["trajcast/restart_positions"].dtype == np.float64
        assert "positions" not in f["trajcast"], "per-frame float64 only on request"
    reader = TrajectoryReader(path)
    assert reader.provenance == {"model": "none", "seed": 3}
    assert "PCG64" in reader.rng_state


def test_ragged_optional_fields_are_refused(tmp_path, rng):
    atoms = systems(rng)["vacuum"]
    writer = TrajectoryWriter(tmp_path / "r.h5", atoms)
    writer.write(atoms.positions, time_fs=0.0, potential_energy=-1.0)
    with pytest.raises(ValueError, match="lacks potential_energy"):
        writer.write(atoms.positions, time_fs=1.0)
    writer.close()
    with TrajectoryWriter(tmp_path / "r.h5", atoms, mode="a") as again:
        with pytest.raises(ValueError, match="lacks potential_energy"):
            again.write(atoms.positions, time_fs=2.0)
        again.write(atoms.positions, time_fs=2.0, potential_energy=-2.0)
    with TrajectoryReader(tmp_path / "r.h5") as reader:
        assert [a.get_potential_energy() for a in reader] == [-1.0, -2.0]


def test_ase_observer_with_verlet_and_langevin(tmp_path, rng):
    atoms = thermal(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), rng)
    atoms.calc = EMT()
    path = tmp_path / "md.h5"
    dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
    with TrajectoryWriter(path, atoms) as writer:
        dyn.attach(writer, interval=5)
        dyn.run(20)
    traj = md.load(path)
    np.testing.assert_allclose(traj.time, [0, 0.01, 0.02, 0.03, 0.04], atol=1e-7)
    with TrajectoryReader(path) as reader:
        assert [a.info["step"] for a in reader] == [0, 5, 10, 15, 20]
        last = reader[-1]
    assert last.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
    assert last.info["temperature"] == pytest.approx(atoms.get_temperature())

    # resume: a new dynamics object continues the file's time and step numbering
    dyn2 = Langevin(atoms, 2 * units.fs, temperature_K=300, friction=0.02, fixcm=False, rng=rng)
    with TrajectoryWriter(path, atoms, mode="a", dynamics=dyn2) as writer:
        dyn2.attach(writer, interval=5)
        dyn2.run(10)
    with TrajectoryReader(path) as reader:
        assert [a.info["step"] for a in reader] == [0, 5, 10, 15, 20, 25, 30]
        np.testing.assert_allclose(reader.times_fs(), [0, 10, 20, 30, 40, 50, 60])
    assert md.load(path).n_frames == 7


def test_rdf_from_mdtraj_matches_ase(tmp_path):
    from ase.geometry.analysis import Analysis

    rng = np.random.default_rng(4)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    frames = []
    for _ in range(4):  # strongly disordered: liquid-like pair structure
        a = base.copy()
        a.positions += rng.normal(0, 0.35, a.positions.shape)
        frames.append(a)
    path = tmp_path / "liquid.h5"
    with TrajectoryWriter(path, base) as writer:
        for k, a in enumerate(frames):
            writer.write_atoms(a, time_fs=float(k))
    traj = md.load(path)
    r_max, bins = 7.0, 70  # below half the 14.4 Å box
    _, g_mdtraj = md.compute_rdf(
        traj, traj.topology.select_pairs("all", "all"), r_range=(0, r_max / 10), n_bins=bins
    )
    with pytest.warns(FutureWarning):
        g_ase = np.mean(Analysis(frames).get_rdf(r_max, bins), axis=0)
    assert g_mdtraj.max() > 1.3, "a structured RDF, not a flat one"
    np.testing.assert_allclose(g_mdtraj, g_ase, atol=0.02)


def test_topology_residues_and_bonds(tmp_path):
    water = molecule("H2O")
    ethanol = molecule("CH3CH2OH")
    ethanol.positions += [6.0, 0.0, 0.0]
    box = water + ethanol
    box.cell = [12.0, 8.0, 8.0]
    box.pbc = True
    box.positions += [0.0, 4.0, 4.0]
    box.positions[:3] -= [0.5, 0, 0]  # the water straddles the periodic boundary
    path = tmp_path / "mols.h5"
    with TrajectoryWriter(path, box) as writer:
        writer.write_atoms(time_fs=0.0)
    top = md.load(path).topology
    assert [r.name for r in top.residues] == ["HOH", "C2H6O"]
    assert top.n_bonds == 2 + 8
    assert [r.n_atoms for r in top.residues] == [3, 9]
    assert [a.name for a in top.residue(0).atoms] == ["O", "H1", "H2"]
    assert list(top.residue(0).atoms)[0].element.symbol == "O"

    metal = topology_dict(bulk("Cu", cubic=True).repeat(2))
    assert len(metal["chains"][0]["residues"]) == 32 and metal["bonds"] == []
    assert len(topology_dict(water, bonds=False)["chains"][0]["residues"]) == 3


def test_compression_and_slab(tmp_path, rng):
    slab = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    slab.pbc = (True, True, False)
    slab.cell[2] = [0.0, 0.0, 0.0]  # no cell vector along the open direction
    path = tmp_path / "slab.h5"
    with TrajectoryWriter(path, slab, compression="gzip") as writer:
        for k in range(3):
            writer.write_atoms(time_fs=float(k))
    with h5py.File(path, "r") as f:
        assert f["coordinates"].compression == "gzip"
        assert "cell_lengths" not in f, "mdtraj would take a zero-volume cell as periodic"
    assert md.load(path).n_frames == 3
    back = read_frames(path, -1)
    assert np.array_equal(back.pbc, slab.pbc) and np.array_equal(back.cell.array, slab.cell.array)


@pytest.mark.parametrize("suffix", ["traj", "extxyz"])
def test_conversion_from_ase_formats(suffix, tmp_path, rng):
    atoms = thermal(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), rng)
    atoms.calc = EMT()
    frames = []
    dyn = VelocityVerlet(atoms, timestep=1 * units.fs)
    for _ in range(4):
        dyn.run(3)
        atoms.get_potential_energy()
        frame = atoms.copy()
        frame.calc = atoms.calc
        frames.append(frame)
        atoms.calc = EMT()
    source = tmp_path / f"md.{suffix}"
    write(source, frames)
    frames = read(source, ":")  # extxyz keeps 8 decimals: compare with what the file holds
    target = tmp_path / "md.h5"
    assert convert_trajectory(source, target, frame_interval_fs=3.0) == 4
    with TrajectoryReader(target) as reader:
        np.testing.assert_allclose(reader.times_fs(), [0, 3, 6, 9])
        for back, ref in zip(reader, frames, strict=True):
            assert np.array_equal(back.positions, ref.positions)
            np.testing.assert_allclose(
                back.get_velocities(), ref.get_velocities(), rtol=1e-9, atol=1e-15
            )
            assert back.get_potential_energy() == pytest.approx(
                ref.get_potential_energy(), abs=1e-9
            )
    assert md.load(target).n_frames == 4


def test_observer_without_dynamics_warns_and_counts_frames(tmp_path):
    atoms = molecule("H2O")
    with TrajectoryWriter(tmp_path / "w.h5", atoms) as writer:
        with pytest.warns(UserWarning, match="could not find the dynamics"):
            writer()
        writer()
    with TrajectoryReader(tmp_path / "w.h5") as reader:
        assert [a.info["step"] for a in reader] == [0, 1]
        np.testing.assert_array_equal(reader.times_fs(), [0.0, 1.0])
