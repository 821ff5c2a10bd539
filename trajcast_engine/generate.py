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

from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md
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


def output_paths(output: Path, temperatures: Sequence[float], segments: int) -> list[Path]:
    """The files a run writes: ``{stem}_seg{k}.h5`` for each name of :func:`run_stems`."""
    stems = run_stems(output, temperatures)
    return [s.with_name(f"{s.stem}_seg{k}.h5") for s in stems for k in range(segments)]


def generate(
    structure: str | os.PathLike | None = None,
    *,
    calculator: str = "emt",
    parameters: Sequence[str] | dict[str, Any] | None = None,
    temperature: str | float | Sequence[float] = 300.0,
    supercell: Sequence[int] | None = None,
    system: str = "cu-emt-potential",
    output: str | os.PathLike = "reference.h5",
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> list[Path]:
    """Run reference MD for each temperature and return the segment files written.

    ``structure`` is any file ASE reads (default: the built-in structure of the shipped
    model named ``system``, the 256-atom fcc Cu crystal unless told); ``settings`` are
    :class:`ReferenceSettings` fields (``md_timestep``, ``segments``, ``segment_steps``,
    ...); temperature ``k`` of the list runs with seed ``seed + k``.
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
    paths = output_paths(output, temperatures, int(base.segments))
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists: pass --overwrite to replace it")
    atoms = load_structure(structure, system, supercell)
    parameters = parse_parameters(parameters)

    runs = [
        ReferenceSettings(**{**vars(base), "temperature": t, "seed": base.seed + k})
        for k, t in enumerate(temperatures)
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(r.total_steps for r in runs), unit="step", dynamic_ncols=True,
                   desc="reference MD")  # fmt: skip
    written: list[Path] = []
    try:
        for settings_k, stem in zip(runs, run_stems(output, temperatures), strict=True):

            def report(phase: str, done: int, total: int, t=settings_k.temperature,
                       last={"phase": None, "done": 0}) -> None:  # noqa: B006 (per run)  # fmt: skip
                if bar is None:
                    return
                bar.update(done - last["done"] if phase == last["phase"] else done)
                last.update(phase=phase, done=done)
                bar.set_postfix_str(f"{t:g} K, {phase}")

            written += run_reference_md(
                atoms, calculator, settings_k, stem, overwrite=overwrite, progress=report,
                calculator_parameters=parameters,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return written
