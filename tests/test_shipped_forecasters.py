"""Fast physics checks of the shipped forecasters against fresh reference MD.

Short versions of ``examples/validate_forecaster.py`` (whose full output is in each model
card): a thermostatted rollout from the model's built-in structure against reference MD
of the same system and temperature with the reference calculator that installs with the
test extras. Tolerances are loose (a few ps: the mean temperature of a 256-atom system over 3 ps
scatters by about 2% between seeds) but each catches a broken model: a
forecaster that cools, heats, freezes the liquid or loses its spectrum fails them.
"""

from __future__ import annotations

import pytest

from trajcast_engine import analysis
from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md
from trajcast_engine.models import default_system, shipped_model_available, system_file
from trajcast_engine.simulate import simulate

pytestmark = pytest.mark.slow


def rollout_and_reference(tmp_path, model, calculator, parameters, temperature, md_step,
                          stride, steps, burn, tau, equilibration, reference_frames,
                          production="csvr"):  # fmt: skip
    if not shipped_model_available(model):
        pytest.skip(f"{model} is not built")
    settings = ReferenceSettings(
        temperature=temperature, md_timestep=md_step, equilibration_steps=equilibration,
        segments=1, segment_steps=stride * reference_frames, write_every=stride,
        production=production, tau=tau, thermostat_every=stride, seed=4242,
    )  # fmt: skip
    ref = run_reference_md(default_system(model), calculator, settings, tmp_path / "ref.h5",
                           calculator_parameters=parameters)[0]  # fmt: skip
    report = simulate(model, temperature=temperature, steps=steps + burn,
                      output=tmp_path / "fc.h5", seed=5, progress=False)  # fmt: skip
    assert report.steps == steps + burn  # no instability
    return analysis.load(tmp_path / "fc.h5", start=burn), analysis.load(ref)


def test_liquid_argon_forecaster_reproduces_lennard_jones_md(tmp_path):
    rollout, reference = rollout_and_reference(
        tmp_path, "ar-lj-forecaster", "lj", {"sigma": 3.40, "epsilon": 0.0104, "rc": 10.2},
        temperature=100.0, md_step=2.0, stride=10, steps=250, burn=25, tau=200.0,
        equilibration=500, reference_frames=200,
    )  # fmt: skip
    metrics = analysis.compare(rollout, reference, 3 * 256 - 3, diffusion=True)
    t = metrics["temperature"]["test"]
    assert t["mean"] == pytest.approx(100.0, rel=0.05)
    assert metrics["vdos_overlap"] > 0.9
    assert abs(metrics["diffusion"]["relative_error"]) < 0.3
    peak = metrics["rdf_first_peak"]
    assert peak["test"] == pytest.approx(peak["reference"], abs=0.2)
    assert metrics["rdf_integrated_abs_difference"] < 0.4


@pytest.fixture(scope="module")
def copper(tmp_path_factory):
    rollout, reference = rollout_and_reference(
        tmp_path_factory.mktemp("cu"), "cu-emt-forecaster", "emt", {}, temperature=300.0,
        md_step=1.0, stride=20, steps=150, burn=50, tau=200.0, equilibration=500,
        reference_frames=60,
    )  # fmt: skip
    return analysis.compare(rollout, reference, 3 * 256 - 3)


def test_copper_forecaster_keeps_temperature_and_crystal(copper):
    assert copper["temperature"]["test"]["mean"] == pytest.approx(300.0, rel=0.05)
    peak = copper["rdf_first_peak"]
    assert peak["test"] == pytest.approx(peak["reference"], abs=0.05)


def test_copper_forecaster_vibrational_spectrum(copper):
    """Loose: 3 ps against 1.2 ps of reference (the pooled 1 ns check in the model card
    gives 0.960 at 300 K under the model's default Langevin thermostat, whose kick once a
    stride adds a 2% white floor; the weights before these 0.961, and 0.981 under CSVR);
    the lmax-1 model this replaced, which heated its highest modes, scored 0.3 here."""
    assert copper["vdos_overlap"] > 0.8, copper["vdos_overlap"]
    height = copper["rdf_first_peak_height"]
    assert height["test"] == pytest.approx(height["reference"], rel=0.1)


def test_alanine_dipeptide_forecaster_holds_temperature_and_bonds(tmp_path):
    """The molecule: stable, at its temperature (internal motion over 3N - 6), with the
    reference's bond lengths and C-H bond vibration (the C-H peak height: weights trained
    with more input noise damped the bonds and, under CSVR, put it 40-80% too high); the
    spectrum against MD under the same Langevin thermostat. 20 ps each: over 3 ps a 22-atom
    molecule's mean temperature and C-H peak height vary by more than these tolerances
    between seeds (278.7 K, and a reference peak of 0.68 against 0.58 over 250 ps). Each
    element's temperature checks equipartition."""
    pdb = str(system_file("ala2-amber-forecaster"))
    rollout, reference = rollout_and_reference(
        tmp_path, "ala2-amber-forecaster",
        "trajcast_engine.data.openmm_calculator:OpenMMCalculator", {"pdb": pdb},
        temperature=300.0, md_step=0.5, stride=10, steps=4000, burn=200, tau=200.0,
        equilibration=2000, reference_frames=4000, production="langevin",
    )  # fmt: skip
    metrics = analysis.compare(rollout, reference, 3 * 22 - 6)
    assert metrics["temperature"]["test"]["mean"] == pytest.approx(300.0, rel=0.05)
    peak = metrics["rdf_first_peak"]
    assert peak["test"] == pytest.approx(peak["reference"], abs=0.02)  # C-H bonds, 1.09 Å
    height = metrics["rdf_first_peak_height"]
    assert height["test"] == pytest.approx(height["reference"], rel=0.25)
    assert metrics["rdf_integrated_abs_difference"] < 0.3
    # against MD under the rollout's own Langevin thermostat (τ = 200 fs): 20 ps windows
    # of 250 ps runs scored 0.91-0.94 (two references 0.92-0.94); against CSVR MD the
    # friction alone costs about 0.1 (model card)
    assert metrics["vdos_overlap"] > 0.85, metrics["vdos_overlap"]
    # equipartition: under CSVR the carbons of these weights ran 16% hot over 50 ps; the
    # default Langevin keeps each element's 5 ps means within 3-6% (H and C, 6 atoms or
    # more; the 2 N and 3 O atoms scatter by 7-10% over 20 ps in the reference itself)
    per_element = metrics["element_temperatures"]["test"]
    assert per_element["H"] == pytest.approx(300.0, rel=0.1)
    assert per_element["C"] == pytest.approx(300.0, rel=0.1)
