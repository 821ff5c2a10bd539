"""YAML training configs: checked before any data is read; ``trajcast train`` end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import copper_reference

from trajcast_engine.nn.model_io import load_model
from trajcast_engine.train.config import default_config, load_config


def write(path, content: dict) -> str:
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    paths = copper_reference(out / "cu.h5", equilibration_steps=20, segments=2,
                             segment_steps=40, decorrelation_steps=10)  # fmt: skip
    return [p.name for p in paths], out


def test_printed_default_config_is_a_valid_config(tmp_path, trajectories):
    names, folder = trajectories
    text = default_config("forecaster")
    raw = yaml.safe_load(text)
    raw["data"]["trajectories"] = [str(folder / n) for n in names]
    config = load_config(write(tmp_path / "c.yaml", raw))
    assert config["model"].channels == 64 and config["training"].ema_decay == 0.99
    raw = yaml.safe_load(default_config("potential"))
    assert raw["model_type"] == "potential" and "frames" in raw["data"]


def test_init_from_and_output_are_relative_to_the_config_file(tmp_path, trajectories):
    names, folder = trajectories
    raw = yaml.safe_load(default_config("forecaster"))
    raw["data"]["trajectories"] = [str(folder / n) for n in names]
    raw["training"]["init_from"] = "stage1.pt.last"
    (tmp_path / "runs").mkdir()
    config = load_config(write(tmp_path / "runs" / "c.yaml", raw))
    assert config["training"].init_from == str(tmp_path / "runs" / "stage1.pt.last")
    assert config["output"] == tmp_path / "runs" / "forecaster.pt"
    raw["training"]["init_from"] = str(tmp_path / "elsewhere.pt")  # absolute: kept
    config = load_config(write(tmp_path / "runs" / "c.yaml", raw))
    assert config["training"].init_from == str(tmp_path / "elsewhere.pt")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"widht": 3}}, "unknown key 'model.widht'"),
        ({"training": {"epochs": "ten"}}, "'training.epochs' must be int, got 'ten'"),
        ({"training": {"learning_rate": True}}, "'training.learning_rate' must be float"),
        ({"model_type": "oracle"}, "model_type must be one of"),
        ({"schedule": {}}, "unknown section(s) ['schedule']"),
        ({"data": {"trajectories": ["missing.h5"]}}, "data file not found"),
        ({"data": {"frames": ["x.xyz"]}}, "unknown key(s) data.['frames']"),
        (
            {"data": {"trajectories": ["a.h5"], "lammps_types": "Cu"}},
            "'data.lammps_types' must be list[str | int] | None, got 'Cu'",
        ),
        (
            {"data": {"trajectories": ["a.h5"], "frame_interval_fs": "10 fs"}},
            "'data.frame_interval_fs' must be float",
        ),
    ],
)
def test_bad_configs_fail_before_training(tmp_path, trajectories, change, message):
    names, folder = trajectories
    raw = {
        "model_type": "forecaster",
        "model": {"species": [29]},
        "data": {"trajectories": [str(folder / n) for n in names]},
    }
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "data":
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_config(write(tmp_path / "c.yaml", raw))
    assert message in str(info.value)


def tiny_forecaster(trajectories: list[str], epochs: int) -> dict:
    """A config of a forecaster small enough to train in seconds, written to fc.pt."""
    return {
        "model_type": "forecaster",
        "model": {"species": [29], "cutoff": 4.0, "lmax": 1, "channels": 4, "num_layers": 1,
                  "radial_hidden": 8, "md_timestep": 2.0, "stride": 5},
        "training": {"epochs": epochs, "batch_size": 4, "validation_fraction": 0.5},
        "data": {"trajectories": trajectories},
        "output": "fc.pt",
    }  # fmt: skip


def test_trajcast_train_end_to_end(tmp_path, trajectories):
    names, folder = trajectories
    raw = tiny_forecaster([str(folder / n) for n in names], epochs=2)
    path = write(tmp_path / "c.yaml", raw)
    command = [sys.executable, "-m", "trajcast_engine.cli", "train", path]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1" in result.stdout
    assert "epoch 2/2" in result.stderr  # the progress bar over an epoch's batches
    model = load_model(tmp_path / "fc.pt")
    assert model.kind == "forecaster" and model.timestep == pytest.approx(10.0)
    log = (tmp_path / "fc.pt.csv").read_text().splitlines()
    header = log[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "lr", "val_velocity_relative"} <= set(header)
    assert [row.split(",")[header.index("epoch")] for row in log[1:]] == ["0", "1"]
    assert (tmp_path / "fc.pt.png").stat().st_size > 0  # the learning curve
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "exists: pass --overwrite" in again.stderr
    both = subprocess.run(command + ["--resume", "--overwrite"], capture_output=True, text=True)
    assert both.returncode != 0 and "pick one" in both.stderr

    # a longer run continues from the saved state: epochs 0-1 kept, epoch 2 added
    raw["training"]["epochs"] = 3
    write(tmp_path / "c.yaml", raw)
    resumed = subprocess.run(command + ["--resume", "--quiet"], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2" in resumed.stdout and "epoch 0" not in resumed.stdout
    assert "epoch 3/3" not in resumed.stderr  # --quiet: no bar
    log_after = (tmp_path / "fc.pt.csv").read_text().splitlines()
    assert log_after[:3] == log and len(log_after) == 4


def test_trajcast_train_reads_extxyz_with_the_configs_frame_interval(tmp_path, trajectories):
    from ase.io import write as write_frames

    from trajcast_engine.data.pairs import load_trajectory

    names, folder = trajectories
    files = []
    for name in names:
        frames = load_trajectory(folder / name)
        interval = frames[1].info["time_fs"] - frames[0].info["time_fs"]
        for atoms in frames:
            atoms.info.pop("time_fs")  # extxyz as another code writes it: no times
        write_frames(tmp_path / f"{name}.extxyz", frames)
        files.append(f"{name}.extxyz")
    raw = tiny_forecaster(files, epochs=1)
    command = [
        sys.executable,
        "-m",
        "trajcast_engine.cli",
        "train",
        write(tmp_path / "c.yaml", raw),
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "pass frame_interval_fs" in refused.stderr
    raw["data"]["frame_interval_fs"] = interval
    write(tmp_path / "c.yaml", raw)
    assert load_config(tmp_path / "c.yaml")["data_options"] == {"frame_interval_fs": interval}
    result = subprocess.run(command + ["--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert load_model(tmp_path / "fc.pt").timestep == pytest.approx(10.0)


def test_trajcast_train_resume_needs_a_saved_state(tmp_path, trajectories):
    names, folder = trajectories
    raw = {"model_type": "forecaster", "model": {"species": [29], "md_timestep": 2.0},
           "data": {"trajectories": [str(folder / n) for n in names]}}  # fmt: skip
    config = write(tmp_path / "c.yaml", raw)
    command = [sys.executable, "-m", "trajcast_engine.cli", "train", config, "--resume"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "nothing to resume" in result.stderr and "forecaster.pt.state" in result.stderr


@pytest.mark.parametrize("name", ["forecaster", "potential"])
def test_the_documented_example_configs_are_valid(tmp_path, trajectories, name):
    from pathlib import Path

    names, folder = trajectories
    example = Path(__file__).resolve().parents[1] / "examples" / "configs" / f"{name}.yaml"
    raw = yaml.safe_load(example.read_text())
    key = "trajectories" if name == "forecaster" else "frames"
    raw["data"][key] = [str(folder / n) for n in names]  # stand-ins for the named data
    config = load_config(write(tmp_path / f"{name}.yaml", raw))
    assert config["model_type"] == name and config["output"].name.endswith(".pt")
    assert "trajcast train" in example.read_text()
