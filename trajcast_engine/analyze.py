"""``trajcast analyze``: observables of a trajectory as PNG plots and a JSON summary.

For one trajectory: RDF, VDOS (when velocities are stored), MSD with the diffusion
coefficient, and temperature and energies (kinetic; potential and total when stored)
over time. With a
reference trajectory, every plot overlays both and the summary adds the comparison
metrics of :func:`trajcast_engine.analysis.compare`. Plots use matplotlib's Agg backend:
no display is needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from trajcast_engine import analysis

DRIFT_WINDOWS = 5


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def analyze(
    path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    skip: int = 0,
) -> dict[str, Any]:
    """Write ``rdf.png``, ``vdos.png``, ``msd.png``, ``temperature.png``, ``energy.png``
    (kinetic, and potential and total relative to the first frame, per atom, when stored),
    with per-element temperatures in the summary where there are several elements,
    ``drift.png`` (the trajectory's RDF, first peak and RMS fluctuation in five stretches,
    :func:`~trajcast_engine.analysis.drift`; from 10 frames on) and ``summary.json`` into
    ``output_dir`` (default: ``{trajectory stem}_analysis``); ``skip`` drops the first
    frames (equilibration). Returns the summary."""
    path = Path(path)
    out = Path(output_dir) if output_dir is not None else path.with_name(f"{path.stem}_analysis")
    out.mkdir(parents=True, exist_ok=True)
    runs = {"trajectory": analysis.load(path, start=skip)}
    if reference is not None:
        runs["reference"] = analysis.load(reference, start=skip)
    plt = _figure()
    n_atoms = runs["trajectory"].positions.shape[1]
    n_dof = analysis.degrees_of_freedom(runs["trajectory"])
    summary: dict[str, Any] = {"trajectory": str(path), "atoms": n_atoms, "frames": {}}
    plots, warnings = [], []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, data in runs.items():
        r, g = analysis.rdf(data)
        ax.plot(r, g, label=name)
        summary["frames"][name] = int(data.positions.shape[0])
        summary.setdefault("rdf_first_peak", {})[name] = analysis.first_peak(r, g)[0]
    ax.set(xlabel="r (Å)", ylabel="g(r)", title="Radial distribution function")
    ax.legend()
    plots.append(_save(fig, out / "rdf.png"))

    if all(d.velocities is not None for d in runs.values()):
        aliased = []
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, data in runs.items():
            nu, d = analysis.vdos(data)
            ax.plot(nu, d, label=name)
            summary.setdefault("mean_vdos_frequency_thz", {})[name] = float(
                np.sum(nu * d) / np.sum(d)
            )
            near_nyquist = analysis.nyquist_weight(nu, d)
            if near_nyquist > analysis.ALIASED_WEIGHT:
                interval = float(np.mean(np.diff(data.times)))
                aliased.append(
                    f"{name}: frames {interval:g} fs apart resolve vibrations only up to "
                    f"{nu[-1]:.3g} THz, and {near_nyquist:.1%} of its spectrum sits at that "
                    "limit: faster vibrations are aliased (folded to lower frequencies), "
                    "so the VDOS and its mean frequency are not the atoms' own; write "
                    "frames closer together (trajcast simulate --write-every)"
                )
        cumulative = np.cumsum(d) / np.sum(d)
        top = nu[min(len(nu) - 1, int(np.searchsorted(cumulative, 0.999)))]
        ax.set_xlim(0, 1.3 * top)
        title = "Vibrational DOS" + (" (aliased: frames too far apart)" if aliased else "")
        warnings += aliased
        ax.set(xlabel="frequency (THz)", ylabel="VDOS (1/THz)", title=title)
        ax.legend()
        plots.append(_save(fig, out / "vdos.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, data in runs.items():
        t, values = analysis.msd(data)
        ax.plot(t / 1000.0, values, label=name)
        summary.setdefault("diffusion_1e-9_m2_per_s", {})[name] = analysis.diffusion_coefficient(
            data
        )
    ax.set(xlabel="t (ps)", ylabel="MSD (Å²)", title="Mean squared displacement")
    ax.legend()
    plots.append(_save(fig, out / "msd.png"))

    series = {name: analysis.temperatures(data, n_dof) for name, data in runs.items()}
    if all(t is not None for t in series.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, data in runs.items():
            ax.plot(data.times / 1000.0, series[name], label=name, lw=0.8)
            summary.setdefault("temperature", {})[name] = analysis.temperature_statistics(
                series[name], n_dof
            )
        ax.set(xlabel="t (ps)", ylabel="T (K)", title="Temperature")
        ax.legend()
        plots.append(_save(fig, out / "temperature.png"))
    for name, data in runs.items():  # equipartition between elements
        if analysis.several_elements_moving(data):
            per_element = analysis.element_temperatures(data)
            summary.setdefault("element_temperatures", {})[name] = per_element

    energies = {name: d for name, d in runs.items() if d.kinetic_energies is not None}
    if energies:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, data in energies.items():
            t, kinetic = data.times / 1000.0, data.kinetic_energies / n_atoms
            ax.plot(t, kinetic, label=f"{name} kinetic", lw=0.8)
            entry = {"kinetic_mean_eV_per_atom": float(np.mean(kinetic))}
            if data.potential_energies is not None:
                pot = data.potential_energies / n_atoms
                total = pot + kinetic
                ax.plot(t, pot - pot[0], label=f"{name} potential - U(0)", lw=0.8)
                ax.plot(t, total - total[0], label=f"{name} total - E(0)", lw=0.8)
                entry.update(potential_mean_eV_per_atom=float(np.mean(pot)),
                             total_drift_eV_per_atom=float(total[-1] - total[0]))  # fmt: skip
            summary.setdefault("energy", {})[name] = entry
        ax.set(xlabel="t (ps)", ylabel="energy (eV/atom)", title="Energy")
        ax.legend(fontsize="small")
        plots.append(_save(fig, out / "energy.png"))

    data = runs["trajectory"]
    if data.positions.shape[0] >= 2 * DRIFT_WINDOWS:
        rows, rdfs = analysis.drift(data, series["trajectory"], DRIFT_WINDOWS)
        summary["drift"] = rows
        plots.append(_drift_plot(plt, rows, rdfs, out / "drift.png"))

    if reference is not None:
        summary["comparison"] = analysis.compare(runs["trajectory"], runs["reference"], n_dof)
    summary["plots"] = [str(p) for p in plots]
    summary["warnings"] = warnings
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["summary"] = str(out / "summary.json")
    return summary


def _drift_plot(plt, rows: list[dict[str, Any]], rdfs: list, path: Path) -> Path:
    """The RDF of each stretch of the run overlaid (early light, late dark), and the
    first-peak height and RMS fluctuation per stretch against time."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.get_cmap("viridis")(np.linspace(0.9, 0.1, len(rows)))
    for row, (r, g), colour in zip(rows, rdfs, colours, strict=True):
        left.plot(r, g, color=colour, lw=0.9, label=f"{row['start_ps']:.0f}-{row['end_ps']:.0f} ps")
    left.set(xlabel="r (Å)", ylabel="g(r)", title="RDF per stretch of the run")
    left.legend(fontsize="small")
    middle = [0.5 * (row["start_ps"] + row["end_ps"]) for row in rows]
    heights = [row["peak_height"] for row in rows]
    right.plot(middle, heights, "o-", color="C0")
    right.set(xlabel="t (ps)", title="Drift (axes from zero: a steady run is flat)")
    right.set_ylim(0.0, 1.25 * max(heights))
    right.set_ylabel("RDF first-peak height", color="C0")
    twin = right.twinx()
    fluctuations = [row["rms_fluctuation"] for row in rows]
    twin.plot(middle, fluctuations, "s--", color="C1")
    twin.set_ylim(0.0, 1.25 * max(fluctuations))
    twin.set_ylabel("RMS fluctuation about mean positions (Å)", color="C1")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
