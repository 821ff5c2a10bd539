"""The examples a user copies run (fast settings), so that they cannot rot."""

from __future__ import annotations

import json
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


@pytest.mark.skipif(not shipped_model_available("ar-lj-forecaster"), reason="no shipped model")
def test_validate_forecaster_scores_and_reuses_its_kept_reference(tmp_path):
    """The physics validation script on a short run: one table row per temperature from
    two pooled runs a side, and with --reuse-references the kept references are not run
    again."""
    # ASE's own Lennard-Jones (the test extras leave asap3 out), a short equilibration
    args = ["ar-lj-forecaster", "--temperatures", "100", "--steps", "40", "--burn", "5",
            "--calculator", "lj", "--equilibration-steps", "100", "--repeats", "2",
            "--no-baseline", "--keep", "kept", "--output", "report.json"]  # fmt: skip
    out = run("validate_forecaster.py", *args, cwd=tmp_path)
    assert "100 K  forecaster vs reference (2 runs each): RDF" in out and "VDOS overlap" in out
    first = json.loads((tmp_path / "report.json").read_text())["100 K"]
    assert first["runs"] == {"test": 2, "reference": 2}
    references = sorted((tmp_path / "kept").glob("reference*100K*seg0.h5"))
    assert len(references) == 2 and len(list((tmp_path / "kept").glob("rollout*.h5"))) == 2
    stamps = [reference.stat().st_mtime_ns for reference in references]
    again = run("validate_forecaster.py", *args, "--reuse-references", cwd=tmp_path)
    assert all(f"{reference.name}" in again for reference in references) and "reusing" in again
    assert [reference.stat().st_mtime_ns for reference in references] == stamps
    second = json.loads((tmp_path / "report.json").read_text())["100 K"]
    assert second["rdf_integrated_abs_difference"] == first["rdf_integrated_abs_difference"]
    # --seed: other runs, so the kept references (other seeds) are run again
    other = run("validate_forecaster.py", *args, "--reuse-references", "--seed", "1",
                cwd=tmp_path)  # fmt: skip
    assert "reusing" not in other
    third = json.loads((tmp_path / "report.json").read_text())["100 K"]
    assert third["rdf_integrated_abs_difference"] != first["rdf_integrated_abs_difference"]


def test_validate_forecaster_names_a_calculator_it_cannot_make(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "validate_forecaster.py"), "ar-lj-forecaster",
         "--calculator", "no-such-engine", "--steps", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown calculator 'no-such-engine'" in result.stderr


@pytest.mark.skipif(not shipped_model_available("cu-emt-forecaster"), reason="no shipped model")
def test_phonon_bands_reads_energy_kept_and_band_temperatures(tmp_path):
    """The phonon-band check on a 32-atom copper crystal with ASE's EMT: one band table of
    energy kept by the shipped forecaster, and band temperatures of an EMT run."""
    from ase.build import bulk
    from ase.io import write

    from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md

    lattice = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    write(tmp_path / "lattice.extxyz", lattice)
    settings = ReferenceSettings(temperature=300.0, md_timestep=2.0, equilibration_steps=40,
                                 segments=1, segment_steps=100, write_every=5)  # fmt: skip
    md = run_reference_md(lattice, "emt", settings, tmp_path / "cu.h5")[0]
    common = ["--lattice", "lattice.extxyz", "--calculator", "emt", "--bands", "0", "5", "9"]
    model = str(ROOT / "trajcast_engine" / "models" / "cu_emt_forecaster.pt")
    out = run("phonon_bands.py", "--model", model, "--pairs", str(md), "--every", "2",
              *common, cwd=tmp_path)  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert [int(c) for c in rows["modes"]] == [32, 61]  # 93 modes: 3 x 32 less 3
    assert all(0.9 < float(x) < 1.1 for x in rows["E"] + rows["K"])
    assert all(0 < float(x) < 0.1 for x in rows["±E"] + rows["±K"])  # bootstrap errors
    # the run's own states, each followed one stride by exact EMT MD
    out = run("phonon_bands.py", "--model", model, "--states", str(md), "--every", "8",
              *common, cwd=tmp_path)  # fmt: skip
    assert out.splitlines()[0].startswith("3 pairs:")  # frames 0, 8 and 16 of 21
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert all(0.9 < float(x) < 1.1 for x in rows["E"] + rows["K"])
    out = run("phonon_bands.py", "--runs", str(md), "--references", str(md), "--start", "2",
              *common, cwd=tmp_path)  # fmt: skip
    runs, references = out.splitlines()
    assert runs.startswith("runs (1): T by band, kinetic")
    assert runs.split(":", 1)[1] == references.split(":", 1)[1]  # the same file
