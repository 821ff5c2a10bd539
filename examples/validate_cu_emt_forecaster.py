"""Validate the shipped fcc-Cu forecaster against held-out reference MD, and time it.

For each temperature: reference EMT MD (fresh seeds, never used in training; NVT
equilibration then CSVR with τ = 200 fs at a 1 fs step, frames every 20 fs) against a
forecaster rollout under CSVR (τ = 10 strides) from the perfect crystal. Compared: RDF
(integrated absolute difference and first peak), VDOS overlap, mean temperature and its
fluctuation. The speed-up is simulated ps per wall second of the forecaster against
classic MD with the companion potential (``cu-emt-potential``) at the reference 1 fs step,
same process.

    python examples/validate_cu_emt_forecaster.py --steps 1000      # 20 ps per temperature
    python examples/validate_cu_emt_forecaster.py --steps 100 --temperatures 300  # quick

Prints a table and writes ``runs/validation_cu_emt_forecaster.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

from trajcast_engine import analysis
from trajcast_engine.calculator import TrajcastCalculator
from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md, thermalize
from trajcast_engine.models import shipped_model_path
from trajcast_engine.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_STEP_FS = 1.0


def classic_md_ps_per_second(temperature: float, steps: int = 20) -> float:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    thermalize(atoms, temperature, np.random.default_rng(0))
    atoms.calc = TrajcastCalculator(shipped_model_path("cu-emt-potential"))
    dyn = VelocityVerlet(atoms, REFERENCE_STEP_FS * units.fs)
    dyn.run(2)  # warm-up
    start = time.perf_counter()
    dyn.run(steps)
    return steps * REFERENCE_STEP_FS * 1e-3 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cu-emt-forecaster")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0])
    parser.add_argument("--steps", type=int, default=1000, help="forecaster steps (20 fs)")
    parser.add_argument("--burn", type=int, default=50, help="forecaster steps to discard")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "runs" / "validation_cu_emt_forecaster.json"
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k, temperature in enumerate(args.temperatures):
            settings = ReferenceSettings(
                temperature=temperature,
                md_timestep=REFERENCE_STEP_FS,
                equilibration_steps=4000,
                segments=1,
                segment_steps=20 * args.steps,
                write_every=20,
                production="csvr",
                tau=200.0,
                seed=9000 + k,
            )
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
            ref_path = run_reference_md(atoms, "asap-emt", settings, tmp / f"ref{k}.h5")[0]
            out = tmp / f"fc{k}.h5"
            report = simulate(
                args.model,
                temperature=temperature,
                steps=args.steps + args.burn,
                output=out,
                seed=k,
                progress=False,
            )
            n_dof = 3 * 256 - 3
            reference = analysis.load(ref_path)
            rollout = analysis.load(out, start=args.burn)
            metrics = analysis.compare(rollout, reference, n_dof)
            forecaster_rate = report.simulated_ps / report.wall_seconds
            classic_rate = classic_md_ps_per_second(temperature)
            metrics["speed"] = {
                "forecaster_ps_per_s": forecaster_rate,
                "classic_md_ps_per_s": classic_rate,
                "speed_up": forecaster_rate / classic_rate,
            }
            results[f"{temperature:g} K"] = metrics
            t, ref = metrics["temperature"]["test"], metrics["temperature"]["reference"]
            peak = metrics["rdf_first_peak"]
            print(
                f"{temperature:6.0f} K  RDF ∫|Δg| {metrics['rdf_integrated_abs_difference']:.4f} Å"
                f"  peak {peak['test']:.3f}/{peak['reference']:.3f} Å"
                f"  VDOS overlap {metrics['vdos_overlap']:.3f}"
                f"  T {t['mean']:.1f}±{t['std']:.1f} (ref {ref['mean']:.1f}±{ref['std']:.1f},"
                f" canonical σ {t['canonical_std']:.1f})"
                f"  speed-up {metrics['speed']['speed_up']:.1f}x",
                flush=True,
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print("wrote", args.output)


if __name__ == "__main__":
    main()
