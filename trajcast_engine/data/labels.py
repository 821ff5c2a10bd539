"""Freezing a reference calculator's results onto a copy of a structure."""

from __future__ import annotations

from collections.abc import Sequence

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator


def labelled_copy(
    atoms: Atoms,
    calculator: Calculator | None = None,
    properties: Sequence[str] = ("energy", "forces", "stress"),
) -> Atoms:
    """A copy of ``atoms`` carrying ``properties`` from ``calculator`` (default: the one
    attached) in a ``SinglePointCalculator``, as extxyz and .traj files store labels.
    Stress is skipped for structures that are not periodic in all three directions."""
    calc = calculator if calculator is not None else atoms.calc
    if calc is None:
        raise ValueError("no calculator: attach one to the atoms or pass calculator=")
    source = atoms
    if calculator is not None:
        source = atoms.copy()
        source.calc = calculator
    wanted = [p for p in properties if p != "stress" or atoms.pbc.all()]
    labels = {name: source.calc.get_property(name, source) for name in wanted}
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, **labels)
    return copy
