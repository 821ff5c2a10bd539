"""``trajcast generate``: reference MD into training files, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import h5py
import mdtraj
import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from conftest import cut_frames

from trajcast_engine.data.pairs import load_trajectory
from trajcast_engine.data.reference_md import ReferenceSettings, make_calculator
from trajcast_engine.generate import output_paths, parse_parameters, parse_temperatures

SHORT = ["--equilibration-steps", "20", "--segment-steps", "30", "--write-every", "5",
         "--decorrelation-steps", "10", "--quiet"]  # fmt: skip


def trajcast(*args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "trajcast_engine.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def argon(tmp_path_factory):
    """A 32-atom argon box (as .cif) and the generate run over it at two temperatures."""
    folder = tmp_path_factory.mktemp("argon")
    write(folder / "ar.cif", bulk("Ar", "fcc", a=5.78, cubic=True).repeat(2))
    result = trajcast(
        "generate", "--structure", "ar.cif", "--calculator", "lj", "--param", "sigma=3.4",
        "--param", "epsilon=0.0104", "--param", "rc=5.7", "--temperature", "90,120",
        "--segments", "2", "--timestep", "4", "--melt", "300:20", "--output", "ref.h5",
        *SHORT, cwd=folder,
    )  # fmt: skip
    return folder, result


def test_generate_writes_one_file_per_temperature_and_segment(argon):
    folder, result = argon
    assert result.returncode == 0, result.stderr
    names = ["ref_90K_seg0.h5", "ref_90K_seg1.h5", "ref_120K_seg0.h5", "ref_120K_seg1.h5"]
    for name in names:
        assert name in result.stdout
        traj = mdtraj.load(folder / name)
        assert traj.n_atoms == 32 and traj.n_frames == 7  # frames 0, 5, ..., 30
    with h5py.File(folder / names[0]) as f:
        assert f["velocities"].shape == (7, 32, 3)
        assert np.isfinite(f["potentialEnergy"][:]).all()
        assert f["/trajcast/positions"].dtype == np.float64  # full precision for training
        assert abs(f["time"][1] - f["time"][0] - 0.020) < 1e-9  # 5 steps of 4 fs, in ps
    frames = load_trajectory(folder / names[0])
    assert frames[0].get_chemical_symbols() == ["Ar"] * 32


def test_generate_is_seeded_and_temperatures_differ(argon, tmp_path):
    folder, _ = argon
    again = trajcast(
        "generate", "--structure", str(folder / "ar.cif"), "--calculator", "lj",
        "--param", "sigma=3.4", "--param", "epsilon=0.0104", "--param", "rc=5.7",
        "--temperature", "90", "--segments", "1", "--timestep", "4", "--melt", "300:20",
        "--output", "one.h5", *SHORT, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    same = load_trajectory(folder / "ref_90K_seg0.h5")[-1].positions
    assert np.array_equal(load_trajectory(tmp_path / "one_seg0.h5")[-1].positions, same)
    hot = load_trajectory(folder / "ref_120K_seg0.h5")[-1].positions
    assert not np.allclose(hot, same)


def test_default_generate_runs_emt_copper_from_a_yaml_config(tmp_path):
    (tmp_path / "gen.yaml").write_text(
        "segment-steps: 4\nequilibration_steps: 2\ntimestep: 1.0\nseed: 3\n"
    )
    result = trajcast("generate", "--config", "gen.yaml", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = load_trajectory(tmp_path / "reference_seg0.h5")
    assert len(frames) == 5 and len(frames[0]) == 256
    assert set(frames[0].get_chemical_symbols()) == {"Cu"}
    assert "trajcast train" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--structure", "missing.xyz"], "structure file not found: missing.xyz"),
        (["--calculator", "gaussian"], "unknown calculator 'gaussian'"),
        (["--calculator", "nowhere:Calc"], "cannot import calculator"),
        (["--temperature", "0"], "temperatures must be > 0 K"),
        (["--temperature", "warm"], "temperature must be a number"),
        (["--segment-steps", "-5"], "segment_steps must be >= 0"),
        (["--param", "sigma"], "calculator parameters are KEY=VALUE"),
        (["--param", "colour=3"], "colour"),
        (["--melt", "hot"], "--melt is TEMPERATURE:STEPS"),
        (["--output", "nowhere/ref.h5"], "output directory does not exist"),
        (["--system", "no-such-model"], "no-such-model"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
    result = trajcast("generate", "--segment-steps", "2", *args, "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    args = ["generate", "--segment-steps", "2", "--equilibration-steps", "0", "--quiet"]
    assert trajcast(*args, cwd=tmp_path).returncode == 0
    refused = trajcast(*args, cwd=tmp_path)
    assert refused.returncode != 0 and "reference_seg0.h5 exists" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert trajcast(*args, "--overwrite", cwd=tmp_path).returncode == 0


def test_helpers():
    assert parse_temperatures("300, 600") == [300.0, 600.0]
    assert parse_temperatures(250) == [250.0]
    assert parse_parameters(["sigma=3.4", "elements=[18]", "smooth=true"]) == {
        "sigma": 3.4, "elements": [18], "smooth": True
    }  # fmt: skip
    from pathlib import Path

    assert [p.name for p in output_paths(Path("d/r.h5"), [300.0], 2)] == [
        "r_seg0.h5", "r_seg1.h5"
    ]  # fmt: skip
    settings = ReferenceSettings(melt_temperature=300, melt_steps=7, equilibration_steps=5,
                                 segments=3, segment_steps=10, decorrelation_steps=2)  # fmt: skip
    assert settings.total_steps == 7 + 5 + 30 + 4
    with pytest.raises(ValueError, match="melt_temperature must be > 0"):
        ReferenceSettings(melt_temperature=-1)


def test_asap_lennard_jones_matches_ase():
    pytest.importorskip("asap3")
    from ase.calculators.lj import LennardJones

    atoms = bulk("Ar", "fcc", a=5.78, cubic=True).repeat(3)
    atoms.rattle(0.1, seed=0)
    ours = atoms.copy()
    ours.calc = make_calculator("asap-lj", sigma=3.4, epsilon=0.0104, rc=8.0)
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=False)
    assert ours.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    assert np.allclose(ours.get_forces(), atoms.get_forces(), atol=1e-9)


def test_reuse_existing_keeps_finished_temperatures_and_their_seeds(tmp_path):
    from trajcast_engine.generate import generate

    atoms = bulk("Ar", "fcc", a=5.78, cubic=True)  # an Atoms object, not a file
    kw = {"calculator": "lj", "parameters": {"sigma": 3.4, "epsilon": 0.0104, "rc": 5.7},
          "md_timestep": 4.0, "equilibration_steps": 5, "segment_steps": 10, "write_every": 5,
          "seed": 3, "progress": False}  # fmt: skip
    full = generate(atoms, temperature="90,120", output=tmp_path / "a.h5", **kw)
    first = generate(atoms, temperature="90", output=tmp_path / "b_90K.h5", **kw)
    stamp = first[0].stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="b_90K_seg0.h5 exists"):
        generate(atoms, temperature="90,120", output=tmp_path / "b.h5", **kw)
    both = generate(atoms, temperature="90,120", output=tmp_path / "b.h5", reuse_existing=True,
                    **kw)  # fmt: skip
    assert both[0] == first[0] and first[0].stat().st_mtime_ns == stamp  # not run again
    for a, b in zip(full, both, strict=True):  # 120 K still runs with seed + 1
        assert np.array_equal(load_trajectory(a)[-1].positions, load_trajectory(b)[-1].positions)


def test_reuse_existing_runs_a_killed_or_differently_made_temperature_again(tmp_path):
    """A temperature whose segment was cut by a killed run, or made with other settings or
    calculator parameters, is not reused: refused without overwrite, else run again."""
    from trajcast_engine.generate import generate

    atoms = bulk("Ar", "fcc", a=5.78, cubic=True)
    kw = {"calculator": "lj", "parameters": {"sigma": 3.4, "epsilon": 0.0104, "rc": 5.7},
          "md_timestep": 4.0, "equilibration_steps": 5, "segment_steps": 10, "write_every": 5,
          "seed": 3, "progress": False, "temperature": "90,120",
          "reuse_existing": True}  # fmt: skip
    first = generate(atoms, output=tmp_path / "a.h5", **kw)
    final = load_trajectory(first[1])[-1].positions
    cut_frames(first[1], 1)  # 120 K killed after its first frame
    stamp = first[0].stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="a_120K_seg0.h5 exists and is not a finished"):
        generate(atoms, output=tmp_path / "a.h5", **kw)
    again = generate(atoms, output=tmp_path / "a.h5", overwrite=True, **kw)
    assert again == first and first[0].stat().st_mtime_ns == stamp  # 90 K kept
    assert len(load_trajectory(again[1])) == 3  # 120 K complete, as first run
    assert np.array_equal(load_trajectory(again[1])[-1].positions, final)
    other = {**kw, "parameters": {**kw["parameters"], "rc": 5.5}}
    with pytest.raises(FileExistsError, match="a_90K_seg0.h5 exists and is not a finished"):
        generate(atoms, output=tmp_path / "a.h5", **other)
    with pytest.raises(FileExistsError, match="a_90K_seg0.h5 exists and is not a finished"):
        generate(atoms, output=tmp_path / "a.h5", **{**kw, "write_every": 2})


def test_resume_completes_an_interrupted_data_set(tmp_path):
    args = ["generate", "--segment-steps", "4", "--equilibration-steps", "0", "--quiet",
            "--temperature", "300,400", "--timestep", "1"]  # fmt: skip
    assert trajcast(*args, cwd=tmp_path).returncode == 0
    kept = (tmp_path / "reference_300K_seg0.h5").stat().st_mtime_ns
    cut_frames(tmp_path / "reference_400K_seg0.h5", 2)
    resumed = trajcast(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "reference_300K_seg0.h5").stat().st_mtime_ns == kept
    assert len(load_trajectory(tmp_path / "reference_400K_seg0.h5")) == 5
