"""The examples a user copies run (fast settings), so that they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trajcast_engine.models import shipped_model_available

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, cwd) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                            cwd=cwd, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_potential_with_ase_langevin(tmp_path):
    assert "stress (eV/Å³)" in run("potential_langevin.py", "--fast", cwd=tmp_path)


@pytest.mark.skipif(not shipped_model_available("cu-emt-forecaster"), reason="no shipped model")
def test_forecaster_in_ase_and_mdtraj_analysis(tmp_path):
    out = run("forecaster_in_ase.py", "--fast", cwd=tmp_path)
    assert "forecaster_in_ase.h5: 3 frames" in out
    out = run("analyse_with_mdtraj.py", "forecaster_in_ase.h5", cwd=tmp_path)
    assert "RDF first peak at" in out and "mean T =" in out


def test_train_own_forecaster(tmp_path):
    out = run("train_own_forecaster.py", "--fast", cwd=tmp_path)
    assert "relative velocity error" in out
    assert (tmp_path / "my_forecaster" / "forecaster.pt").is_file()


def test_validation_reuses_only_a_matching_complete_reference(tmp_path, monkeypatch):
    """validate_forecaster.py --reuse-references: a kept reference is reused only when its
    provenance records the same calculator and settings and it holds every frame."""
    import dataclasses
    import importlib.util

    import h5py
    from ase.build import bulk

    from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md

    spec = importlib.util.spec_from_file_location(
        "validate_forecaster", ROOT / "examples" / "validate_forecaster.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    settings = ReferenceSettings(temperature=300.0, md_timestep=2.0, equilibration_steps=5,
                                 segments=1, segment_steps=12, write_every=3,
                                 production="csvr", seed=4)  # fmt: skip
    path = tmp_path / "reference_300K.h5"
    (written,) = run_reference_md(bulk("Cu", cubic=True), "emt", settings, path)
    assert module.reusable_reference(path, "emt", settings) == written
    assert module.reusable_reference(path, "asap-emt", settings) is None
    assert module.reusable_reference(path, "emt", dataclasses.replace(settings, seed=5)) is None
    longer = dataclasses.replace(settings, segment_steps=15)
    assert module.reusable_reference(path, "emt", longer) is None
    with h5py.File(written, "a") as f:  # as a killed run leaves it: fewer frames

        def cut(name, node):
            if isinstance(node, h5py.Dataset) and node.maxshape and node.maxshape[0] is None:
                node.resize(2, axis=0)

        f.visititems(cut)
    assert module.reusable_reference(path, "emt", settings) is None
    assert module.reusable_reference(tmp_path / "missing.h5", "emt", settings) is None
