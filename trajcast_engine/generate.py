"""``trajcast generate``: reference MD with an ASE calculator, written as training data.

One run of :func:`trajcast_engine.data.reference_md.run_reference_md` per temperature
(optional melt, NVT equilibration, NVE or CSVR production segments), each segment an
mdtraj-format HDF5 file with full-precision positions, velocities and energies, ready for
``trajcast train``. Units: fs, K, Å, eV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ase import Atoms

from trajcast_engine.data.reference_md import (
    ReferenceSettings,
    finished_segment,
    run_reference_md,
    segment_path,
)
from trajcast_engine.progress import progress_bar
from trajcast_engine.simulate import load_structure


def parse_temperatures(text: str | float | Sequence[float]) -> list[float]:
    """``"300"`` or ``"300,600,900"`` (or numbers) -> temperatures in K, each > 0."""
    if isinstance(text, str):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(
                f"temperature must be a number or a comma list in K, got {text!r}"
            ) from None
    elif isinstance(text, int | float):
        values = [float(text)]
    else:
        values = [float(v) for v in text]
    if not values or not all(v > 0 and v != float("inf") for v in values):
        raise ValueError(f"temperatures must be > 0 K, got {text!r}")
    return values


def parse_parameters(items: Sequence[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["sigma=3.4", "elements=[18]"]`` -> ``{"sigma": 3.4, "elements": [18]}`` (values
    read as YAML scalars or lists, so numbers, booleans and lists keep their types)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    import yaml

    parameters = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"calculator parameters are KEY=VALUE, got {item!r}")
        parameters[key.strip()] = yaml.safe_load(value)
    return parameters


def run_stems(output: Path, temperatures: Sequence[float]) -> list[Path]:
    """One output name per temperature: ``output`` itself, or ``{stem}_{T}K.h5`` for
    several temperatures."""
    if len(temperatures) == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{t:g}K{output.suffix}") for t in temperatures]


def segment_paths(stem: Path, segments: int) -> list[Path]:
    """The files one run writes: ``{stem}_seg{k}.h5`` (as ``run_reference_md`` names them)."""
    return [segment_path(stem, k) for k in range(segments)]


def output_paths(output: Path, temperatures: Sequence[float], segments: int) -> list[Path]:
    """The files all runs write: :func:`segment_paths` of each name of :func:`run_stems`."""
    return [p for s in run_stems(output, temperatures) for p in segment_paths(s, segments)]


def generate(
    structure: str | os.PathLike | Atoms | None = None,
    *,
    calculator: str = "emt",
    parameters: Sequence[str] | dict[str, Any] | None = None,
    temperature: str | float | Sequence[float] = 300.0,
    supercell: Sequence[int] | None = None,
    system: str = "cu-emt-potential",
    output: str | os.PathLike = "reference.h5",
    overwrite: bool = False,
    reuse_existing: bool = False,
    progress: bool = True,
    **settings: Any,
) -> list[Path]:
    """Run reference MD for each temperature and return the segment files written.

    ``structure`` is any file ASE reads or an ``Atoms`` (default: the built-in structure
    of the shipped model named ``system``, the 256-atom fcc Cu crystal unless told);
    ``settings`` are :class:`ReferenceSettings` fields (``md_timestep``, ``segments``,
    ``segment_steps``, ...); temperature ``k`` of the list runs with seed ``seed + k``.
    ``reuse_existing``: a temperature whose segments all finished with this calculator,
    these parameters and these settings (:func:`finished_segment`) is not run again (its
    files are returned as they are), so an interrupted data set completes where it stopped;
    a temperature with a missing, cut (killed) or differently made segment runs again,
    replacing its files only with ``overwrite``.
    """
    known = {f.name for f in fields(ReferenceSettings)} - {"temperature"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown reference settings {unknown}; known: {sorted(known)}")
    temperatures = parse_temperatures(temperature)
    base = ReferenceSettings(temperature=temperatures[0], **settings)
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {output.parent}")
    stems = run_stems(output, temperatures)
    runs = [
        (ReferenceSettings(**{**vars(base), "temperature": t, "seed": base.seed + k}), stem)
        for k, (t, stem) in enumerate(zip(temperatures, stems, strict=True))
    ]
    files = {stem: segment_paths(stem, int(base.segments)) for stem in stems}
    parameters = parse_parameters(parameters)
    done = {
        stem
        for settings_k, stem in runs
        if reuse_existing
        and all(
            finished_segment(stem, calculator, settings_k, k, parameters)
            for k in range(int(base.segments))
        )
    }
    existing = [p for s in stems if s not in done for p in files[s] if p.exists()]
    if existing and not overwrite:
        why = " and is not a finished segment of this run" if reuse_existing else ""
        raise FileExistsError(f"{existing[0]} exists{why}: pass --overwrite to replace it")
    atoms = load_structure(structure, system, supercell)

    bar = None
    if progress:
        total = sum(r.total_steps for r, stem in runs if stem not in done)
        bar = progress_bar(total, "reference MD")
    last = {"key": None, "done": 0}  # the progress report's last (temperature, phase)

    def report(t: float, phase: str, steps_done: int) -> None:
        if bar is None:
            return
        same = last["key"] == (t, phase)
        bar.update(steps_done - last["done"] if same else steps_done)
        last.update(key=(t, phase), done=steps_done)
        bar.set_postfix_str(f"{t:g} K, {phase}", refresh=False)

    written: list[Path] = []
    try:
        for settings_k, stem in runs:
            if stem in done:
                written += files[stem]
                continue
            written += run_reference_md(
                atoms, calculator, settings_k, stem, overwrite=overwrite,
                progress=lambda phase, n, _total, t=settings_k.temperature: report(t, phase, n),
                calculator_parameters=parameters,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return written
