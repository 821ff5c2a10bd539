"""Unit factors between the engine (Å, fs, eV, Å/fs) and mdtraj's HDF5 files (nm, ps,
kJ/mol, nm/ps). Multiply an engine value by the factor to get the file's value."""

from __future__ import annotations

from ase import units

NM_PER_ANGSTROM = 0.1
PS_PER_FS = 1e-3
#: Å/fs -> nm/ps: (0.1 nm) / (1e-3 ps)
NM_PER_PS_PER_ANGSTROM_PER_FS = 100.0
#: eV per particle -> kJ/mol (≈ 96.485)
KJ_PER_MOL_PER_EV = units.eV / (units.kJ / units.mol)
#: ASE velocity unit (Å per ASE time unit) -> Å/fs
ANGSTROM_PER_FS_PER_ASE_VELOCITY = units.fs
