"""Fitting the potential: it learns, checkpoints the best model and rejects bad data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from trajcast_engine.data import labelled_copy
from trajcast_engine.nn.model_io import load_model
from trajcast_engine.train import FitSettings, fit_potential

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    species=[29],
    cutoff=4.0,
    lmax=1,
    channels=4,
    num_layers=1,
    num_basis=4,
    radial_hidden=8,
    dtype="float32",
)


def emt_frames(n: int, seed: int = 0) -> list:
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.rattle(0.1, seed=seed + k)
        frames.append(labelled_copy(atoms, EMT()))
    return frames


def test_fit_learns_and_checkpoints(tmp_path):
    source = tmp_path / "frames.extxyz"
    write(source, emt_frames(24))
    checkpoint = tmp_path / "best.pt"
    rows = []
    result = fit_potential(
        [source],
        SMALL,
        FitSettings(epochs=12, batch_size=4, seed=1),
        checkpoint=checkpoint,
        log=rows.append,
    )
    assert len(rows) == len(result.history) >= 2
    first, best = rows[0]["val_loss"], min(r["val_loss"] for r in rows)
    assert best < 0.5 * first, "the validation loss falls"
    assert result.validation["loss"] == pytest.approx(best, rel=1e-4)
    saved = load_model(checkpoint)
    assert saved.metadata["training"]["frames"] == 22
    assert saved.metadata["training"]["validation_frames"] == 2
    assert saved.config.avg_num_neighbors > 1 and saved.config.energy_scale > 0
    # the reference energy is the per-atom EMT energy from least squares
    mean_per_atom = np.mean([a.get_potential_energy() / len(a) for a in emt_frames(24)])
    assert saved.config.reference_energies[0] == pytest.approx(mean_per_atom, abs=0.05)


def test_resumed_potential_fit_continues_exactly(tmp_path):
    source = tmp_path / "frames.extxyz"
    write(source, emt_frames(12))

    def fit(epochs, name, resume=False):
        settings = FitSettings(epochs=epochs, batch_size=4, seed=2, ema_decay=0.9)
        return fit_potential([source], SMALL, settings, tmp_path / name, resume=resume)

    straight = fit(4, "a.pt")
    fit(2, "b.pt")
    resumed = fit(4, "b.pt", resume=True)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in straight.history]
    for key, value in straight.model.state_dict().items():
        assert np.array_equal(value.numpy(), resumed.model.state_dict()[key].numpy()), key
    log = (tmp_path / "b.pt.csv").read_text().splitlines()
    assert len(log) == 5 and log[0].startswith("epoch,")


def test_bad_training_data(tmp_path):
    unlabelled = tmp_path / "plain.xyz"
    write(unlabelled, [bulk("Cu", cubic=True)] * 3)
    with pytest.raises(ValueError, match="frame 0 of .*plain.xyz has no reference energy"):
        fit_potential([unlabelled], SMALL)
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=0.0, forces=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"atomic numbers \[1, 8\] absent from config.species"):
        fit_potential(emt_frames(2) + [water], SMALL)
    with pytest.raises(ValueError, match="at least 2 labelled frames"):
        fit_potential(emt_frames(1), SMALL)


def test_example_script_runs(tmp_path):
    out = tmp_path / "cu.pt"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "fit_cu_emt_potential.py"),
            "--frames",
            "16",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--data",
            str(tmp_path / "d.extxyz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "force  MAE" in result.stdout and load_model(out).config.species == [29]


def test_labelled_copy():
    water = molecule("H2O")
    with pytest.raises(ValueError, match="no calculator"):
        labelled_copy(water)
    from ase.calculators.emt import EMT as Reference

    crystal = bulk("Cu", "fcc", a=3.61, cubic=True)
    labelled = labelled_copy(crystal, Reference())
    assert crystal.calc is None, "the original is left alone"
    assert set(labelled.calc.results) == {"energy", "forces", "stress"}
    open_copy = labelled_copy(molecule("CH4"), Reference())
    assert "stress" not in open_copy.calc.results, "no stress for an open system"
