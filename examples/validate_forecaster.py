"""Validate a shipped forecaster against held-out reference MD, and time it.

For each temperature: fresh reference MD (seeds never used in training; NVT equilibration,
then CSVR at the reference step, frames every stride; ``--reference-thermostat langevin``:
the rollout's own Langevin thermostat, a kick every stride with the rollout's τ, so that
both share one friction) against a forecaster rollout from
the model's built-in structure under its model card's thermostat (``--thermostat`` and
``--tau`` to choose). Compared: RDF (integrated absolute difference ∫|Δg| dr and first
peak; for the molecule the pair-distance distribution), VDOS overlap, mean temperature and
its fluctuation against the canonical T·sqrt(2/N_dof), and for the liquid the diffusion
coefficient, for a molecule each element's temperature and for the crystal each phonon
band's (equipartition; :mod:`trajcast_engine.phonons`). The same
metrics between two reference runs of different seeds (``--no-baseline`` skips them)
give each metric's noise floor at this run length: a forecaster is as good as this
validation can tell where it matches that floor. The
speed-up is simulated ps per wall second of the forecaster against classic MD with the
companion (the ML potential where the model card names one, else the reference calculator
itself) at the reference step, same process.

    python examples/validate_forecaster.py cu-emt-forecaster --steps 1000
    python examples/validate_forecaster.py ar-lj-forecaster --steps 2500
    python examples/validate_forecaster.py ala2-amber-forecaster --steps 2000
    python examples/validate_forecaster.py ar-lj-forecaster --steps 100   # quick look

Prints a table and writes ``runs/validation_{model}.json``. ``--keep FOLDER`` keeps the
rollouts (``rollout_{T}K.h5``) and the references (``reference_{T}K_seg0.h5``, the floor's
``reference_{T}K_b_seg0.h5``) there for ``trajcast analyze``, overwriting earlier ones; by
default they go with a temporary folder. With ``--keep``, ``--reuse-references`` reuses the
references already there when their provenance records the same settings and they hold
every frame (several model files against one reference).

One run's RDF and spectrum carry the sampling noise of its slowest modes, and a rollout's
varies between seeds more than two references differ. ``--repeats N`` runs N rollouts and
N references per temperature (other seeds; files ``..._r1`` on) and pools them
(:func:`trajcast_engine.analysis.compare`), the baseline too: the floor and the score then
belong to N times the run length. ``--calculator`` replaces the setup's reference
calculator (``lj``, ASE's own Lennard-Jones, where asap3 is not installed) and
``--equilibration-steps`` its equilibration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import units
from ase.md.verlet import VelocityVerlet

from trajcast_engine import analysis
from trajcast_engine.data.reference_md import (
    ReferenceSettings,
    finished_segment,
    make_calculator,
    run_reference_md,
    thermalize,
)
from trajcast_engine.models import default_system, shipped_model_path, system_file
from trajcast_engine.nn.model_io import read_model_file
from trajcast_engine.phonons import band_temperatures, harmonic_modes
from trajcast_engine.simulate import simulate
from trajcast_engine.trajectory import TrajectoryReader

ROOT = Path(__file__).resolve().parents[1]
ALA2 = str(system_file("ala2-amber-forecaster"))


@dataclass
class Setup:
    """How one model is validated: its reference calculator and run lengths."""

    calculator: str
    parameters: dict = field(default_factory=dict)
    temperatures: tuple[float, ...] = (300.0,)
    tau_fs: float = 200.0
    equilibration_steps: int = 4000
    companion: str | None = None  # an ML potential for the speed-up, else the reference
    liquid: bool = False
    neighbour_cutoff: float | None = None  # Å: neighbours for the velocity correlation
    phonon_bands: tuple[float, ...] | None = None  # THz: a crystal's mode-temperature bands


SETUPS = {
    "cu-emt-forecaster": Setup(
        "asap-emt",
        temperatures=(300.0, 600.0),
        companion="cu-emt-potential",
        neighbour_cutoff=3.0,  # the first shell
        phonon_bands=(0, 2, 3, 4, 5, 6, 7, 8),
    ),  # fmt: skip
    "ar-lj-forecaster": Setup(
        "asap-lj",
        {"sigma": 3.40, "epsilon": 0.0104, "rc": 10.2},
        temperatures=(100.0,),
        equilibration_steps=2500,
        liquid=True,
        neighbour_cutoff=5.2,
    ),  # fmt: skip
    "ala2-amber-forecaster": Setup(
        "trajcast_engine.data.openmm_calculator:OpenMMCalculator",
        {"pdb": ALA2},
        tau_fs=100.0,
        equilibration_steps=10000,
        neighbour_cutoff=1.7,  # the covalent bonds
    ),  # fmt: skip
}


def reference_run(model: str, setup: Setup, md_step: float, stride: int, temperature: float,
                  frames: int, seed: int, path: Path, thermostat: str = "csvr",
                  tau_fs: float | None = None, reuse: bool = False) -> Path:  # fmt: skip
    """Fresh reference MD at the reference step, a frame every stride, under CSVR with the
    setup's τ, or under the forecaster's Langevin thermostat (a kick every stride, τ
    ``tau_fs``). ``reuse``: return the segment file already at ``path`` when it is
    complete and was written with exactly these settings (:func:`finished_segment`)."""
    settings = ReferenceSettings(
        temperature=temperature,
        md_timestep=md_step,
        equilibration_steps=setup.equilibration_steps,
        segments=1,
        segment_steps=stride * frames,
        write_every=stride,
        production=thermostat,
        tau=setup.tau_fs if tau_fs is None else tau_fs,
        thermostat_every=stride,
        seed=seed,
    )
    if reuse:
        existing = finished_segment(path, setup.calculator, settings, 0, setup.parameters)
        if existing is not None:
            print(f"reusing {existing}")
            return existing
    return run_reference_md(default_system(model), setup.calculator, settings, path,
                            calculator_parameters=setup.parameters, overwrite=True)[0]  # fmt: skip


def structure_file(model: str, folder: Path) -> tuple[Path, bool]:
    """``(path, built)``: the model's shipped structure file, or its built crystal written
    to ``folder`` (``built`` True) to hand to :func:`simulate`."""
    try:
        return Path(system_file(model)), False
    except ValueError:  # a built crystal: hand it over as a file
        path = folder / "structure.extxyz"
        default_system(model).write(path)
        return path, True


def repeat_suffix(rep: int) -> str:
    """The file-name suffix of repeat ``rep`` (none for the first, as without --repeats)."""
    return f"_r{rep}" if rep else ""


def summary_line(metrics: dict) -> str:
    """One line of :func:`analysis.compare`'s metrics."""
    t, ref = metrics["temperature"]["test"], metrics["temperature"]["reference"]
    peak = metrics["rdf_first_peak"]
    height = metrics["rdf_first_peak_height"]
    line = (
        f"RDF ∫|Δg| {metrics['rdf_integrated_abs_difference']:.4f}"
        f"  peak {peak['test']:.3f}/{peak['reference']:.3f} Å"
        f" height {height['test']:.2f}/{height['reference']:.2f}"
        f"  VDOS overlap {metrics['vdos_overlap']:.3f}"
        f" (mean {metrics['vdos_mean_frequency']['test']:.3f}"
        f"/{metrics['vdos_mean_frequency']['reference']:.3f} THz)"
        f"  T {analysis.format_temperature(t)}, ref {analysis.format_temperature(ref)}"
    )
    if "neighbour_velocity_correlation" in metrics:
        c = metrics["neighbour_velocity_correlation"]
        line += f"  neighbour v-corr {c['test']:+.4f}/{c['reference']:+.4f}"
    if "phonon_bands" in metrics:
        bands = metrics["phonon_bands"]
        line += "\n        kinetic T by phonon band (THz: run/ref K) " + ", ".join(
            f"{lo:g}-{hi:g}: {a:.0f}/{b:.0f}"
            for lo, hi, a, b in zip(bands["test"]["edges"][:-1], bands["test"]["edges"][1:],
                                    bands["test"]["kinetic"], bands["reference"]["kinetic"],
                                    strict=True)
        )  # fmt: skip
    if "diffusion" in metrics:
        d = metrics["diffusion"]
        line += f"  D {d['test']:.3f}/{d['reference']:.3f} e-9 m²/s"
    if "element_temperatures" in metrics:
        per = metrics["element_temperatures"]
        line += "  T by element " + ", ".join(
            f"{s} {per['test'][s]:.0f}/{per['reference'][s]:.0f}" for s in per["reference"]
        )
    return line


def classic_md_ps_per_second(model: str, setup: Setup, md_step: float, temperature: float,
                             steps: int, max_seconds: float = 10.0) -> float:  # fmt: skip
    """Simulated ps per wall second of velocity Verlet with the companion, over ``steps``
    steps or, for a slow calculator, the steps (a multiple of 10) done in ``max_seconds``."""
    atoms = default_system(model)
    thermalize(atoms, temperature, np.random.default_rng(0))
    if setup.companion is not None:
        from trajcast_engine.calculator import TrajcastCalculator

        atoms.calc = TrajcastCalculator(shipped_model_path(setup.companion))
    else:
        atoms.calc = make_calculator(setup.calculator, **setup.parameters)
    dyn = VelocityVerlet(atoms, md_step * units.fs)
    dyn.run(2)  # warm-up
    start = time.perf_counter()
    done = 0
    while done < steps and (done == 0 or time.perf_counter() - start < max_seconds):
        dyn.run(min(10, steps - done))
        done += min(10, steps - done)
    return done * md_step * 1e-3 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SETUPS))
    parser.add_argument("--model-file", type=Path, help="validate this file with the setup")
    parser.add_argument("--temperatures", type=float, nargs="+")
    parser.add_argument("--steps", type=int, default=1000, help="forecaster steps")
    parser.add_argument("--burn", type=int, default=50, help="forecaster steps to discard")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--calculator", metavar="NAME",
                        help="the reference calculator, in place of the setup's (e.g. 'lj', "
                             "ASE's own Lennard-Jones, for argon without asap3)")  # fmt: skip
    parser.add_argument("--equilibration-steps", type=int, metavar="N",
                        help="the reference's MD steps before its first frame "
                             "(default: the setup's)")  # fmt: skip
    parser.add_argument("--thermostat", choices=("csvr", "langevin"),
                        help="the rollout's (default: the model card's, else csvr)")  # fmt: skip
    parser.add_argument("--tau", type=float, help="the rollout's thermostat time (fs)")
    parser.add_argument("--energy-rescale", metavar="WHAT",
                        help="the rollout's: none, a potential (shipped name or file), or "
                             "'reference' for the reference calculator itself (default: the "
                             "model card's)")  # fmt: skip
    parser.add_argument("--reference-thermostat", choices=("csvr", "langevin"), default="csvr",
                        help="the reference's: CSVR (the issue's NVT), or the rollout's "
                             "Langevin with the rollout's τ")  # fmt: skip
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false",
        help="skip the second reference run (the metrics' noise floor)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=1, metavar="N",
        help="N independent rollouts and N references per temperature (other seeds), "
             "pooled: the RDF and spectrum averaged over runs, so that N runs of --steps "
             "measure what one run N times longer would, with a lower noise floor",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0,
        help="added to every run's seed (temperature k, repeat r: rollout k + 1000 r + "
             "seed, reference 9000 + that); e.g. --temperatures 600 --seed 1 runs the "
             "seeds that 600 K gets in --temperatures 300 600",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the trajectories in this folder")
    parser.add_argument(
        "--reuse-references", action="store_true",
        help="with --keep: reuse the references already there when they were run with "
             "the same settings (to compare several model files against one reference)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.reuse_references and args.keep is None:
        parser.error("--reuse-references needs --keep FOLDER (where the references are)")
    setup = SETUPS[args.model]
    if args.calculator is not None:
        setup = replace(setup, calculator=args.calculator)
    if args.equilibration_steps is not None:
        if args.equilibration_steps < 0:
            parser.error("--equilibration-steps must be >= 0")
        setup = replace(setup, equilibration_steps=args.equilibration_steps)
    try:
        calculator = make_calculator(setup.calculator, **setup.parameters)
    except ValueError as err:
        hint = " (or --calculator lj, ASE's own)" if setup.calculator == "asap-lj" else ""
        parser.error(f"{err}{hint}")
    output = args.output or ROOT / "runs" / f"validation_{args.model}.json"
    model = args.model_file or shipped_model_path(args.model)
    config = read_model_file(model)["config"]
    md_step, stride = float(config["md_timestep"]), int(config["stride"])
    results = {}
    rescale = args.energy_rescale
    if rescale == "reference":  # conserve the reference's own energy in each learned step
        rescale = calculator

    def fresh_reference(temperature: float, seed: int, path: Path, tau_fs: float) -> Path:
        """Reference MD under ``--reference-thermostat``: CSVR with the setup's τ, or
        Langevin with ``tau_fs``, the τ the rollout ran with."""
        frames = args.steps + args.burn
        if args.reference_thermostat == "langevin":
            return reference_run(args.model, setup, md_step, stride, temperature, frames, seed,
                                 path, "langevin", tau_fs, reuse=args.reuse_references)  # fmt: skip
        return reference_run(args.model, setup, md_step, stride, temperature, frames, seed, path,
                             reuse=args.reuse_references)  # fmt: skip

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    folder = (
        tempfile.TemporaryDirectory() if args.keep is None else contextlib.nullcontext(args.keep)
    )
    with folder as tmp:
        tmp = Path(tmp)
        structure, _ = structure_file(args.model, tmp)
        modes = None
        if setup.phonon_bands:  # a crystal: the harmonic modes of the reference potential
            calculator = make_calculator(setup.calculator, **setup.parameters)
            modes = harmonic_modes(default_system(args.model), calculator)

        for k, temperature in enumerate(args.temperatures or setup.temperatures, args.seed):
            rollouts, references, seconds, ran = [], [], [], {}
            for rep in range(args.repeats):
                tag = f"{temperature:g}K{repeat_suffix(rep)}"
                out = tmp / f"rollout_{tag}.h5"
                report = simulate(model, structure, temperature=temperature,
                                  thermostat=args.thermostat, tau=args.tau,
                                  steps=args.steps + args.burn, output=out,
                                  seed=k + 1000 * rep, overwrite=True, progress=False,
                                  energy_rescale=rescale)  # fmt: skip
                with TrajectoryReader(out) as reader:  # what ran: the card's unless told
                    ran = reader.provenance
                seconds.append(report.wall_seconds)
                start = time.perf_counter()
                ref_path = fresh_reference(temperature, 9000 + k + 1000 * rep,
                                           tmp / f"reference_{tag}.h5",
                                           float(ran["thermostat_tau_fs"]))  # fmt: skip
                print(f"reference MD at {temperature:g} K{f' (repeat {rep})' if rep else ''}: "
                      f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
                references.append(analysis.load(ref_path, start=args.burn))
                rollouts.append(analysis.load(out, start=args.burn))
            ran_tau = float(ran["thermostat_tau_fs"])
            n_dof = analysis.degrees_of_freedom(references[0])
            metrics = analysis.compare(
                rollouts,
                references,
                n_dof,
                diffusion=setup.liquid,
                neighbour_cutoff=setup.neighbour_cutoff,
            )
            if modes is not None:  # the references' bands once, for the run and the baseline
                reference_bands = band_temperatures(references, modes, setup.phonon_bands)
                metrics["phonon_bands"] = {
                    "test": band_temperatures(rollouts, modes, setup.phonon_bands),
                    "reference": reference_bands,
                }
            forecaster_rate = args.repeats * report.simulated_ps / sum(seconds)
            classic_rate = classic_md_ps_per_second(
                args.model, setup, md_step, temperature, steps=20 if setup.companion else 2000
            )
            metrics["speed"] = {
                "forecaster_ps_per_s": forecaster_rate,
                "classic_md_ps_per_s": classic_rate,
                "companion": setup.companion or setup.calculator,
                "speed_up": forecaster_rate / classic_rate,
            }
            metrics["rollout_ps"] = args.steps * stride * md_step / 1000
            metrics["rollout_thermostat"] = {"name": ran["thermostat"], "tau_fs": ran_tau}
            metrics["energy_rescale"] = args.energy_rescale or "the model card's"
            metrics["reference_thermostat"] = {
                "name": args.reference_thermostat,
                "tau_fs": ran_tau if args.reference_thermostat == "langevin" else setup.tau_fs,
            }
            pooled = f" ({args.repeats} runs each)" if args.repeats > 1 else ""
            print(f"{temperature:6.0f} K  forecaster vs reference{pooled}: {summary_line(metrics)}"
                  f"  speed-up {metrics['speed']['speed_up']:.2f}x", flush=True)  # fmt: skip
            if args.baseline:
                # The metrics' own noise floor: as many reference runs again, other seeds.
                second_references = [
                    analysis.load(fresh_reference(
                        temperature, 9500 + k + 1000 * rep,
                        tmp / f"reference_{temperature:g}K_b{repeat_suffix(rep)}.h5", ran_tau,
                    ), start=args.burn)
                    for rep in range(args.repeats)
                ]  # fmt: skip
                metrics["baseline"] = analysis.compare(
                    second_references, references, n_dof, diffusion=setup.liquid,
                    neighbour_cutoff=setup.neighbour_cutoff,
                )  # fmt: skip
                if modes is not None:
                    metrics["baseline"]["phonon_bands"] = {
                        "test": band_temperatures(second_references, modes, setup.phonon_bands),
                        "reference": reference_bands,
                    }
                print(f"{temperature:6.0f} K  reference vs reference{pooled}: "
                      f"{summary_line(metrics['baseline'])}", flush=True)  # fmt: skip
            results[f"{temperature:g} K"] = metrics
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print("wrote", output)


if __name__ == "__main__":
    main()
