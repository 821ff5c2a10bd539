"""The trajcast command line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from ase.build import molecule
from ase.io import write

from trajcast_engine import __version__
from trajcast_engine.cli import main


def test_neighbors_on_the_builtin_crystal(capsys):
    args = ["neighbors", "--supercell", "3", "3", "3", "--cutoff", "2.6", "--repeat", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "108 atoms" in out
    assert "mean 12.00, min 12, max 12" in out  # fcc first shell


def test_neighbors_on_a_structure_file(tmp_path, capsys):
    path = tmp_path / "ethanol.xyz"
    write(path, molecule("CH3CH2OH"))
    assert main(["neighbors", str(path), "--cutoff", "1.6", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "9 atoms" in out and "pairs          16 " in out  # 5 C-H, C-C, C-O, O-H bonds, both ways


def test_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="structure file not found"):
        main(["neighbors", str(tmp_path / "missing.xyz")])
    with pytest.raises(SystemExit, match="cutoff must be a finite positive"):
        main(["neighbors", "--cutoff", "-2"])


@pytest.mark.skipif(shutil.which("trajcast") is None, reason="console script not installed")
def test_console_script():
    out = subprocess.run(["trajcast", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "trajcast_engine.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "neighbors" in out.stdout


def test_models_lists_the_shipped_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "cu-emt-potential" in out and "cu-emt-forecaster" in out
    assert "ar-lj-forecaster" in out and "ar-lj-potential" in out


def test_info_describes_models_and_trajectories(tmp_path, capsys):
    from ase.build import bulk

    from trajcast_engine.models import shipped_model_path
    from trajcast_engine.trajectory import TrajectoryWriter

    assert main(["info", str(shipped_model_path("cu-emt-potential"))]) == 0
    out = capsys.readouterr().out
    assert "kind         potential" in out and "species      ['Cu']" in out
    atoms = bulk("Cu", cubic=True)
    with TrajectoryWriter(tmp_path / "t.h5", atoms) as writer:
        writer.write(atoms.positions, time_fs=0.0)
        writer.write(atoms.positions, time_fs=30.0, step=1)
    assert main(["info", str(tmp_path / "t.h5")]) == 0
    out = capsys.readouterr().out
    assert "frames       2" in out and "0 .. 0.03 ps" in out
    (tmp_path / "x.pt").write_text("not a model")
    with pytest.raises(SystemExit, match="not a readable trajcast-engine model file"):
        main(["info", str(tmp_path / "x.pt")])
    with pytest.raises(SystemExit, match="file not found"):
        main(["info", str(tmp_path / "missing.pt")])
