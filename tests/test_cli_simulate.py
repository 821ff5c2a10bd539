"""``trajcast simulate`` run as a user runs it: a subprocess in a working directory."""

from __future__ import annotations

import subprocess
import sys

import h5py
import mdtraj
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import read, write

from trajcast_engine.models import shipped_model_available
from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster
from trajcast_engine.nn.model_io import load_model, save_model
from trajcast_engine.trajectory import TrajectoryReader

shipped_forecaster = pytest.mark.skipif(
    not shipped_model_available("cu-emt-forecaster"),
    reason="the shipped forecaster file is not built yet",
)


def trajcast(*args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "trajcast_engine.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def free_flight(model: TrajCastForecaster) -> TrajCastForecaster:
    """Set the readout so that the model predicts free flight, Δr = v Δt and v' = v
    (a stable stand-in for a trained model: a thermostatted ideal gas)."""
    with torch.no_grad():
        model.readout.weight.zero_()
        model.readout.weight[-2:] = 1.0  # the input-velocity path -> (Δr, v')
        from trajcast_engine.graph import from_atoms

        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.set_velocities(np.ones((len(atoms), 3)))
        graph = from_atoms(atoms, dtype=model.dtype).with_neighbors(model.config.cutoff)
        out = model(graph)
        v = graph.velocities
        model.readout.weight[-2] *= float((v * model.timestep / out["displacements"]).mean())
        model.readout.weight[-1] *= float((v / out["velocities"]).mean())
    return model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small forecaster predicting free flight (stable under a thermostat)."""
    torch.manual_seed(0)
    config = ForecasterConfig(
        species=[29],
        cutoff=4.0,
        lmax=1,
        channels=4,
        num_layers=1,
        radial_hidden=8,
        md_timestep=2.0,
        stride=10,
        displacement_scale=0.01,
        velocity_scale=0.003,
        dtype="float32",
    )
    path = tmp_path_factory.mktemp("model") / "fc.pt"
    save_model(free_flight(TrajCastForecaster(config)), path)
    write(path.parent / "cu.xyz", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2))
    return path


def run(model_file, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    structure = str(model_file.parent / "cu.xyz")
    args = ["simulate", "--model", str(model_file), "--structure", structure, "--quiet"]
    return trajcast(*args, *extra, cwd=tmp_path)


def test_options_take_effect_and_the_file_loads(model_file, tmp_path):
    result = run(model_file, tmp_path, "--steps", "10", "--write-every", "5", "--seed", "3",
                 "--tensor-product", "e3nn", "--edge-chunk", "100")  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = "ran with    tensor products: e3nn (cpu); torch.compile: off; edges in chunks of 100"
    assert said in result.stdout
    with TrajectoryReader(tmp_path / "trajectory.h5") as reader:
        assert reader.provenance["execution"] == said.split("ran with    ")[1]
    assert "trajectory  trajectory.h5" in result.stdout
    assert "trajcast analyze trajectory.h5" in result.stdout  # how to analyse it
    traj = mdtraj.load(str(tmp_path / "trajectory.h5"))
    assert traj.n_frames == 3 and traj.n_atoms == 32
    assert np.allclose(traj.time, [0.0, 0.1, 0.2])  # ps: 5 steps of 20 fs apart
    log = np.loadtxt(tmp_path / "trajectory.log")
    assert log.shape[0] == 3


def test_a_logged_progress_bar_stays_short(model_file, tmp_path):
    """Into a file or a pipe the bar is written when it starts and ends (and once a
    minute), not once per step: a long batch job's log stays readable."""
    structure = str(model_file.parent / "cu.xyz")
    result = trajcast("simulate", "--model", str(model_file), "--structure", structure,
                      "--steps", "200", "--equilibrate", "0", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "200/200" in result.stderr and "ns/day" in result.stderr
    assert result.stderr.count("simulate:") <= 3, result.stderr


def test_same_seed_same_run_and_overwrite_is_needed(model_file, tmp_path):
    first = run(model_file, tmp_path, "--steps", "4", "--output", "a.h5", "--seed", "1")
    second = run(model_file, tmp_path, "--steps", "4", "--output", "b.h5", "--seed", "1")
    assert first.returncode == 0 and second.returncode == 0
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert np.array_equal(a["coordinates"][()], b["coordinates"][()])
    again = run(model_file, tmp_path, "--steps", "4", "--output", "a.h5")
    assert again.returncode != 0
    assert "a.h5 exists: pass --overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert (
        run(model_file, tmp_path, "--steps", "2", "--output", "a.h5", "--overwrite").returncode == 0
    )


def test_resume_continues_numbering_and_the_run(model_file, tmp_path):
    straight = run(model_file, tmp_path, "--steps", "8", "--output", "full.h5", "--seed", "5")
    assert straight.returncode == 0
    part = run(model_file, tmp_path, "--steps", "5", "--output", "part.h5", "--seed", "5")
    assert part.returncode == 0
    rest = run(model_file, tmp_path, "--steps", "3", "--output", "part.h5", "--seed", "5",
               "--resume")  # fmt: skip
    assert rest.returncode == 0, rest.stderr
    full = mdtraj.load(str(tmp_path / "full.h5"))
    resumed = mdtraj.load(str(tmp_path / "part.h5"))
    assert resumed.n_frames == 9
    assert np.allclose(resumed.time, full.time)
    # the resumed run continues the same trajectory (same thermostat noise)
    box = full.unitcell_lengths[-1]  # positions may differ by a wrap into the cell
    gap = resumed.xyz[-1] - full.xyz[-1]
    assert np.abs(gap - box * np.round(gap / box)).max() < 1e-5
    # the log goes on where it stopped: one header, time and step continuing, no repeat
    log = (tmp_path / "part.log").read_text()
    assert log.count("#") == 1
    assert np.array_equal(np.loadtxt(tmp_path / "part.log")[:, :2],
                          np.loadtxt(tmp_path / "full.log")[:, :2])  # fmt: skip


def test_a_resumed_classic_run_continues_its_log(model_file, tmp_path):
    classic = ("--engine", "mlip", "--potential", "cu-emt-potential", "--write-every", "2")
    assert run(model_file, tmp_path, *classic, "--steps", "4").returncode == 0
    rest = run(model_file, tmp_path, *classic, "--steps", "4", "--resume")
    assert rest.returncode == 0, rest.stderr
    assert mdtraj.load(str(tmp_path / "trajectory.h5")).n_frames == 5
    log = (tmp_path / "trajectory.log").read_text()
    assert log.count("Time[ps]") == 1
    times = np.loadtxt(tmp_path / "trajectory.log", skiprows=1)[:, 0]
    assert np.allclose(times, [0.0, 0.004, 0.008, 0.012, 0.016])  # ps: 2 steps of 2 fs


@pytest.mark.parametrize(
    "args, message",
    [
        (["--structure", "missing.xyz"], "structure file not found: missing.xyz"),
        (["--structure", "{ag}"], "not trained on ['Ag']"),
        (["--structure", "{garbage}"], "could not read the structure"),
        (["--temperature", "0"], "temperature must be > 0 K"),
        (["--steps", "-3"], "steps must be >= 0"),
        (["--device", "cuda"], "no CUDA device"),
        (["--output", "nowhere/t.h5"], "output directory does not exist"),
        (["--model", "no-such-model"], "model file not found"),
        (["--tensor-product", "triton"], "unknown tensor-product backend 'triton'"),
        (["--edge-chunk", "-5"], "edge chunk must be a positive number of edges"),
        (["--equilibrate", "-1"], "equilibrate must be >= 0 ps"),
    ],
)
def test_bad_input_gives_one_clear_line(model_file, tmp_path, args, message):
    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("this machine has CUDA")
    ag = tmp_path / "ag.xyz"
    write(ag, bulk("Ag", "fcc", a=4.09, cubic=True))
    (tmp_path / "garbage.xyz").write_text("not\na structure\n")
    args = [a.replace("{ag}", str(ag)).replace("{garbage}", "garbage.xyz") for a in args]
    command = ["simulate", "--model", str(model_file), "--structure",
               str(model_file.parent / "cu.xyz"), "--quiet", "--steps", "2", *args]  # fmt: skip
    result = trajcast(*command, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trajcast: error:"), result.stderr
    assert message in lines[0]


@shipped_forecaster
def test_default_simulate_runs_the_shipped_model(tmp_path):
    result = trajcast("simulate", "--steps", "20", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    traj = mdtraj.load(str(tmp_path / "trajectory.h5"))
    assert traj.n_atoms == 256 and traj.n_frames == 21


def test_engine_mlip_runs_classic_md_with_the_companion_potential(model_file, tmp_path):
    result = run(model_file, tmp_path, "--engine", "mlip", "--steps", "6", "--write-every", "3",
                 "--potential", "cu-emt-potential")  # fmt: skip
    assert result.returncode == 0, result.stderr
    traj = mdtraj.load(str(tmp_path / "trajectory.h5"))
    assert traj.n_frames == 3
    assert np.allclose(traj.time, [0.0, 0.006, 0.012])  # 3 steps of the 2 fs reference step
    assert "Epot[eV]" in (tmp_path / "trajectory.log").read_text()


def test_replicas_run_batched_at_their_own_temperatures(model_file, tmp_path):
    result = run(model_file, tmp_path, "--replicas", "3", "--temperature", "200,400,800",
                 "--steps", "30", "--write-every", "10", "--tau", "40")  # fmt: skip
    assert result.returncode == 0, result.stderr
    means = []
    for k in range(3):
        traj = mdtraj.load(str(tmp_path / f"trajectory_r{k}.h5"))
        assert traj.n_frames == 4
        with h5py.File(tmp_path / f"trajectory_r{k}.h5") as f:
            means.append(f["temperature"][1:].mean())
    assert means[0] < means[1] < means[2]
    for k, target in enumerate((200.0, 400.0, 800.0)):  # each file says what it ran
        with TrajectoryReader(tmp_path / f"trajectory_r{k}.h5") as reader:
            ran = reader.provenance
        assert (ran["replica"], ran["temperature"], ran["seed"]) == (k, target, k)
        assert ran["thermostat"] == "csvr" and ran["thermostat_tau_fs"] == pytest.approx(40.0)
        assert ran["model"].endswith("fc.pt") and ran["energy_rescale"] == "none"
    log = np.loadtxt(tmp_path / "trajectory.log")
    assert log.shape == (4, 5)
    bad = run(model_file, tmp_path, "--replicas", "2", "--temperature", "200,400,800")
    assert bad.returncode != 0 and "3 temperatures given for 2 replicas" in bad.stderr


def test_replicas_warm_up_first_like_a_single_run(model_file, tmp_path):
    """Batched replicas get the same unwritten CSVR warm-up as a single run (2 ps unless
    told otherwise): their first frame is not the input structure, the files and the
    output say so, and --equilibrate 0 starts them from it."""
    structure = read(model_file.parent / "cu.xyz")
    cases = (((), 2.0), (("--equilibrate", "0.2"), 0.2), (("--equilibrate", "0"), 0.0))
    for extra, warm_ps in cases:
        out = tmp_path / f"warm{warm_ps:g}"
        out.mkdir()
        result = run(model_file, out, "--replicas", "2", "--temperature", "200,800",
                     "--steps", "2", *extra)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert ("equilibrated" in result.stdout) == (warm_ps > 0)
        for k in range(2):
            with TrajectoryReader(out / f"trajectory_r{k}.h5") as reader:
                assert reader.provenance["equilibration_ps"] == pytest.approx(warm_ps)
            first = mdtraj.load_frame(str(out / f"trajectory_r{k}.h5"), 0).xyz[0] * 10.0
            moved = np.abs(first - structure.get_positions()).max()
            assert (moved > 1e-3) == (warm_ps > 0), moved


def test_yaml_config_fills_options_and_the_command_line_wins(model_file, tmp_path):
    (tmp_path / "run.yaml").write_text("steps: 3\nwrite-every: 3\ntemperature: 250\nseed: 4\n")
    result = run(model_file, tmp_path, "--config", "run.yaml", "--steps", "6")
    assert result.returncode == 0, result.stderr
    traj = mdtraj.load(str(tmp_path / "trajectory.h5"))
    assert traj.n_frames == 3  # steps 0, 3, 6: write-every from the file, steps from the CLI
    assert "250" in (tmp_path / "trajectory.log").read_text().splitlines()[1]
    (tmp_path / "bad.yaml").write_text("stepz: 3\n")
    bad = run(model_file, tmp_path, "--config", "bad.yaml", "--output", "b.h5")
    assert bad.returncode != 0 and "unknown option 'stepz'" in bad.stderr


def test_a_model_card_sets_the_default_temperature_and_structure(tmp_path):
    from trajcast_engine.simulate import default_temperature, simulate

    if not shipped_model_available("ar-lj-forecaster"):
        pytest.skip("the shipped argon forecaster is not built")
    assert default_temperature("ar-lj-forecaster") == 100.0
    assert default_temperature("cu-emt-forecaster") == 300.0
    result = trajcast("simulate", "--model", "ar-lj-forecaster", "--steps", "3", "--quiet",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    traj = mdtraj.load(tmp_path / "trajectory.h5")
    assert traj.n_atoms == 256 and {a.element.symbol for a in traj.topology.atoms} == {"Ar"}
    mean_t = float(result.stdout.split("mean T")[1].split("K")[0])
    assert 60.0 < mean_t < 140.0  # started at the card's 100 K, not 300 K
    report = simulate("ar-lj-forecaster", temperature=120, steps=2, output=tmp_path / "b.h5",
                      progress=False)  # fmt: skip
    assert report.steps == 2


def test_a_retrained_shipped_model_file_keeps_its_built_in_structure(model_file, tmp_path):
    """A model file whose metadata names a shipped model (its example script's retraining,
    or a fine-tune of its weights) runs on that model's system without --structure."""
    from trajcast_engine.simulate import simulate

    retrained = tmp_path / "retrained.pt"
    save_model(load_model(model_file), retrained, {"name": "cu-emt-forecaster"})
    report = simulate(retrained, steps=2, output=tmp_path / "a.h5", progress=False,
                      equilibrate_ps=0)  # fmt: skip
    assert report.steps == 2
    assert mdtraj.load(tmp_path / "a.h5").n_atoms == 256  # the shipped 4x4x4 fcc-Cu crystal
    result = trajcast("simulate", "--model", str(model_file), "--steps", "2", "--quiet",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0 and "has no built-in structure" in result.stderr


def test_ctrl_c_stops_after_the_step_flushes_and_says_how_to_resume(model_file, tmp_path):
    import signal
    import time

    structure = str(model_file.parent / "cu.xyz")
    command = [sys.executable, "-m", "trajcast_engine.cli", "simulate", "--model",
               str(model_file), "--structure", structure, "--quiet",
               "--steps", "1000000"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "trajectory.h5").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # some steps
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: resume with  trajcast simulate --resume --output trajectory.h5" in out
    assert "Traceback" not in err
    frames = mdtraj.load(str(tmp_path / "trajectory.h5")).n_frames
    assert 1 < frames < 1000001  # stopped early, every step written so far is on disk
    # it says how many steps are left after the last frame on disk (frame 0 is step 0)
    assert f"--steps {1000000 - (frames - 1)} (the steps still to run" in out
    resumed = trajcast("simulate", "--model", str(model_file), "--structure", structure,
                       "--quiet", "--steps", "3", "--resume", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert mdtraj.load(str(tmp_path / "trajectory.h5")).n_frames == frames + 3


def test_ctrl_c_during_the_warm_up_stops_the_command_and_writes_nothing(model_file, tmp_path):
    import signal
    import threading
    import time

    command = [sys.executable, "-m", "trajcast_engine.cli", "simulate", "--model",
               str(model_file), "--structure", str(model_file.parent / "cu.xyz"),
               "--steps", "5", "--equilibrate", "1000"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: process.stderr.read(1), "")))
    reader.start()
    deadline = time.monotonic() + 120
    while "equilibrate" not in "".join(err) and time.monotonic() < deadline:
        time.sleep(0.2)  # the warm-up's progress bar has appeared
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out = process.stdout.read()
    process.wait(timeout=120)
    reader.join(timeout=10)
    message = "".join(err)
    assert process.returncode == 130, message
    assert "interrupted during the equilibration: nothing was written" in message
    assert "Traceback" not in message and "simulate --resume" not in out
    assert not (tmp_path / "trajectory.h5").exists()


def test_the_model_cards_thermostat_is_the_default(model_file, tmp_path):
    """A model whose card recommends Langevin runs under Langevin unless told otherwise;
    a fresh thermostatted run first equilibrates 2 ps, unwritten, unless told not to."""
    model = load_model(model_file)
    carded = tmp_path / "carded.pt"
    save_model(model, carded, {"thermostat": "langevin", "thermostat_tau_fs": 400.0})
    structure = str(model_file.parent / "cu.xyz")
    for extra, expected in (((), "langevin"), (("--thermostat", "csvr"), "csvr")):
        result = trajcast("simulate", "--model", str(carded), "--structure", structure,
                          "--steps", "2", "--quiet", "--output", f"{expected}.h5", *extra,
                          cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        with TrajectoryReader(tmp_path / f"{expected}.h5") as reader:
            assert reader.provenance["thermostat"] == expected
            assert reader.provenance["equilibration_ps"] == pytest.approx(2.0)
            assert reader.provenance["thermostat_tau_fs"] == pytest.approx(400.0)
        assert "equilibrated 2 ps first" in result.stdout
    result = trajcast("simulate", "--model", str(carded), "--structure", structure, "--steps",
                      "2", "--quiet", "--output", "cold.h5", "--equilibrate", "0",
                      cwd=tmp_path)  # fmt: skip
    with TrajectoryReader(tmp_path / "cold.h5") as reader:
        assert reader.provenance["equilibration_ps"] == 0.0
    assert "equilibrated" not in result.stdout


def test_energy_rescaling_with_a_named_calculator_conserves_its_energy(model_file, tmp_path):
    """``--energy-rescale emt``: each learned step keeps ASE's EMT energy plus the kinetic
    energy, which free flight alone would not (it climbs the potential), and the file
    records which companion did it."""
    from ase.calculators.emt import EMT

    def totals(path) -> tuple[np.ndarray, dict]:
        with TrajectoryReader(path) as reader:
            frames, ran = list(reader), reader.provenance
        energies = []
        for atoms in frames:
            atoms.calc = EMT()
            energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        return np.array(energies), ran

    for rescale, name in (("emt", "rescaled.h5"), ("none", "free.h5")):
        result = run(model_file, tmp_path, "--steps", "2", "--thermostat", "none", "--seed", "2",
                     "--energy-rescale", rescale, "--output", name)  # fmt: skip
        assert result.returncode == 0, result.stderr
    rescaled, ran = totals(tmp_path / "rescaled.h5")
    assert ran["energy_rescale"] == "ase.calculators.emt.EMT"
    assert np.abs(rescaled - rescaled[0]).max() < 1e-3  # eV; positions stored in float32
    free, ran = totals(tmp_path / "free.h5")
    assert ran["energy_rescale"] == "none"
    assert np.abs(free - free[0]).max() > 0.05
    bad = run(model_file, tmp_path, "--steps", "1", "--energy-rescale", "nosuch:Calculator")
    assert bad.returncode != 0 and "cannot import calculator 'nosuch:Calculator'" in bad.stderr
