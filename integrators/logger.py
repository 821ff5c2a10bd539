"""A log of a learned rollout that never calls a calculator.

Columns: time (ps), step, temperature (K), target (K, thermostats), the temperature of
each element (K; a learned step that loses equipartition shows up here first), the
energy-rescaling factor and the companion potential's energy (eV) when rescaling is on.
Whitespace-separated with a ``#`` header, so ``numpy.loadtxt`` reads it. A resumed run
appends to its log with time and step continuing from the file it resumes.
"""

from __future__ import annotations

import weakref
from typing import IO, Any

from ase.data import chemical_symbols
from ase.parallel import world
from ase.utils import IOContext


class ForecastLogger(IOContext):
    """ASE observer writing one line per call: ``dyn.attach(ForecastLogger(dyn, "md.log"))``.

    ``logfile`` is a path, an open file or ``"-"`` for standard output. ``resume_from``
    (time in fs, step) continues a resumed run's log: rows are offset by it, the header is
    not repeated, and the run's first call (the state the log already ends with) is
    skipped.
    """

    def __init__(
        self,
        dyn: Any,
        logfile: IO | str,
        mode: str = "a",
        resume_from: tuple[float, int] | None = None,
    ) -> None:
        self.dyn = weakref.proxy(dyn)
        self.logfile = self.openfile(file=logfile, mode=mode, comm=world)
        self.resumed = resume_from is not None
        self.time_offset_fs, self.step_offset = resume_from or (0.0, 0)
        species = sorted(int(z) for z in set(dyn.atoms.numbers))
        self.symbols = [chemical_symbols[z] for z in species]
        columns = ["time[ps]", "step", "T[K]", "T_target[K]"]
        columns += [f"T_{s}[K]" for s in self.symbols]
        if dyn.rollout.rescaler is not None:
            columns += ["rescale", "Epot[eV]"]
        if not self.resumed or _at_start(self.logfile):
            self.logfile.write("# " + " ".join(f"{c:>12s}" for c in columns) + "\n")
            self.logfile.flush()

    def __call__(self) -> None:
        dyn = self.dyn
        if self.resumed and dyn.nsteps == 0:
            return  # the resumed file's last row
        target = dyn.get_target_temperature()
        per_species = dyn.get_species_temperatures()
        values = [
            f"{(self.time_offset_fs + dyn.rollout.time_fs) / 1000.0:12.4f}",
            f"{self.step_offset + dyn.nsteps:12d}",
            f"{dyn.get_temperature():12.2f}",
            f"{float('nan') if target is None else target:12.2f}",
        ]
        values += [f"{per_species[s]:12.2f}" for s in self.symbols]
        rescaler = dyn.rollout.rescaler
        if rescaler is not None:
            factor = dyn.rescale_factor
            energy = rescaler.potential_energy
            values.append(f"{float('nan') if factor is None else factor:12.6f}")
            values.append(f"{float('nan') if energy is None else float(energy[0]):12.4f}")
        self.logfile.write("  " + " ".join(values) + "\n")
        self.logfile.flush()


def _at_start(logfile: IO) -> bool:
    """Whether nothing has been written to ``logfile`` yet (a resumed run lost its log)."""
    try:
        return logfile.tell() == 0
    except (OSError, ValueError):  # a terminal or a pipe
        return False
