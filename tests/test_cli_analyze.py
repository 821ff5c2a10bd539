"""``trajcast analyze`` as a subprocess: plots with content and a JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import copper_reference


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return copper_reference(out / "cu.h5", equilibration_steps=50, segments=2,
                            segment_steps=200, decorrelation_steps=20)  # fmt: skip


def test_analyze_writes_plots_and_summary(runs, tmp_path):
    command = [sys.executable, "-m", "trajcast_engine.cli", "analyze", str(runs[0]),
               "--reference", str(runs[1]), "--output", str(tmp_path / "an")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    import matplotlib.image

    for name in ("rdf", "vdos", "msd", "temperature", "energy", "drift"):
        image = matplotlib.image.imread(tmp_path / "an" / f"{name}.png")
        assert image.shape[0] > 300 and image[..., :3].std() > 0.05  # drawn, not blank
    summary = json.loads((tmp_path / "an" / "summary.json").read_text())
    assert summary["atoms"] == 32 and summary["frames"]["trajectory"] == 201
    assert summary["rdf_first_peak"]["trajectory"] == pytest.approx(2.55, abs=0.1)
    assert 0.5 < summary["comparison"]["vdos_overlap"] <= 1.0
    t = summary["temperature"]["reference"]
    assert 300 < t["mean"] < 700 and np.isfinite(t["canonical_std"])
    energy = summary["energy"]["reference"]  # NVE segments: the total energy is kept
    assert abs(energy["total_drift_eV_per_atom"]) < 1e-3
    # T comes from the velocities over 3N - 3 (the run has no centre-of-mass motion): the
    # stored kinetic energies agree with it, K / N = (3N - 3) k_B T / (2N)
    n_dof = 3 * 32 - 3
    assert energy["kinetic_mean_eV_per_atom"] == pytest.approx(
        0.5 * n_dof / 32 * 8.617333e-5 * t["mean"], rel=1e-3
    )
    assert "VDOS overlap" in result.stdout
    assert summary["warnings"] == [] and "warning" not in result.stderr  # frames 2 fs apart
    # the trajectory in five stretches: an NVE crystal keeps its structure throughout
    drift = summary["drift"]
    assert len(drift) == 5 and drift[-1]["end_ps"] == pytest.approx(0.4)
    for row in drift:
        assert row["peak_position"] == pytest.approx(2.55, abs=0.1)
        assert 0.02 < row["rms_fluctuation"] < 0.3
    table = result.stdout.split("drift    ")[1].splitlines()[1:6]
    spans = [line.split()[0] for line in table]
    assert spans[0] == "0.0-0.1" and spans[-1].endswith("-0.4")
    assert [float(line.split()[-1]) for line in table] == pytest.approx(
        [row["rms_fluctuation"] for row in drift], abs=1e-4
    )
    # 201 frames: enough for a block-averaged error of the mean, printed next to it
    assert 0 < t["standard_error"] < t["std"]
    error = summary["temperature"]["trajectory"]["standard_error"]
    assert f"± {error:.1f} K" in result.stdout


def test_analyze_warns_when_frames_are_too_far_apart_for_the_spectrum(tmp_path):
    # frames 100 fs apart resolve up to 5 THz; EMT copper vibrates up to about 8 THz
    (coarse,) = copper_reference(tmp_path / "coarse.h5", equilibration_steps=0, segments=1,
                                 segment_steps=2000, write_every=50)  # fmt: skip
    command = [sys.executable, "-m", "trajcast_engine.cli", "analyze", str(coarse),
               "--output", str(tmp_path / "an")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "an" / "summary.json").read_text())
    (warning,) = summary["warnings"]
    assert "frames 100 fs apart" in warning and "aliased" in warning and "--write-every" in warning
    assert f"warning: {warning}" in result.stderr


def test_analyze_bad_input(tmp_path):
    command = [sys.executable, "-m", "trajcast_engine.cli", "analyze", str(tmp_path / "x.h5")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip() == f"trajcast: error: trajectory not found: {tmp_path / 'x.h5'}"
