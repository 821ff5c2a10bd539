"""mdtraj topology JSON built from ASE ``Atoms``.

Bonds are inferred between non-metal atoms closer than 1.15 times the sum of their
covalent radii (Cordero et al., Dalton Trans. 2008, 2832, as tabulated by ASE), across
periodic boundaries too. Each connected group of bonded atoms becomes one residue (a
molecule); every other atom is a residue of its own. Metals are never bonded, so a metal
crystal is one residue per atom. The JSON follows mdtraj's HDF5 ``topology`` node:
``{"chains": [{"index", "chain_id", "residues": [{"index", "name", "resSeq", "segmentID",
"atoms": [{"index", "name", "element"}]}]}], "bonds": [[a, b], ...]}``.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols, covalent_radii
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from trajcast_engine.neighbors import neighbor_list_atoms, pair_distances
from trajcast_engine.neighbors.neighbor_list import atoms_batch_arrays

BOND_TOLERANCE = 1.15
#: elements that form covalent bonds for topology purposes
COVALENT = frozenset(
    ["H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Ge", "As", "Se"]
    + ["Br", "Kr", "Sb", "Te", "I", "Xe"]
)


def infer_bonds(atoms: Atoms) -> np.ndarray:
    """(B, 2) bonded atom pairs ``a < b`` (see the module docstring for the rule)."""
    numbers = atoms.numbers
    covalent = np.array([chemical_symbols[z] in COVALENT for z in numbers])
    if covalent.sum() < 2:
        return np.zeros((0, 2), dtype=np.int64)
    radii = covalent_radii[numbers]
    reach = BOND_TOLERANCE * 2 * radii[covalent].max()
    pairs = neighbor_list_atoms(atoms, reach)
    positions, cells, _, ptr = atoms_batch_arrays(atoms)
    d = pair_distances(positions, cells, ptr, pairs.i, pairs.j, pairs.shift)
    i, j = pairs.i, pairs.j
    keep = (i < j) & covalent[i] & covalent[j]
    keep &= d < BOND_TOLERANCE * (radii[i] + radii[j])
    return np.unique(np.stack([i[keep], j[keep]], axis=1), axis=0).reshape(-1, 2)


def _residue_name(symbols: list[str]) -> str:
    """Element symbol for one atom, HOH for water, otherwise the Hill formula."""
    if len(symbols) == 1:
        return symbols[0].upper()
    counts = Counter(symbols)
    if counts == Counter({"H": 2, "O": 1}):
        return "HOH"
    hill = ["C", "H"] if "C" in counts else []
    hill += sorted(s for s in counts if s not in hill)
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in hill if s in counts)


def topology_dict(atoms: Atoms, bonds: bool = True) -> dict:
    """The mdtraj topology of ``atoms`` as a JSON-able dict."""
    n = len(atoms)
    symbols = atoms.get_chemical_symbols()
    bond_pairs = infer_bonds(atoms) if bonds and n > 1 else np.zeros((0, 2), dtype=np.int64)
    if len(bond_pairs):
        graph = coo_matrix((np.ones(len(bond_pairs)), bond_pairs.T), shape=(n, n))
        _, label = connected_components(graph, directed=False)
    else:
        label = np.arange(n)
    # residues in order of their first atom
    first = {}
    for a, lab in enumerate(label):
        first.setdefault(lab, []).append(a)
    residues = []
    for index, members in enumerate(first.values()):
        member_symbols = [symbols[a] for a in members]
        counts = Counter(member_symbols)
        seen: Counter = Counter()
        atoms_json = []
        for a, s in zip(members, member_symbols, strict=True):
            seen[s] += 1
            name = s if counts[s] == 1 else f"{s}{seen[s]}"
            atoms_json.append({"index": int(a), "name": name, "element": s})
        residues.append(
            {
                "index": index,
                "name": _residue_name(member_symbols),
                "resSeq": index + 1,
                "segmentID": "",
                "atoms": atoms_json,
            }
        )
    return {
        "chains": [{"index": 0, "chain_id": "A", "residues": residues}],
        "bonds": bond_pairs.tolist(),
    }


def topology_json(atoms: Atoms, bonds: bool = True) -> bytes:
    """``topology_dict`` serialised as mdtraj stores it."""
    return json.dumps(topology_dict(atoms, bonds=bonds)).encode()


def topology_atom_order(topology: dict) -> list[str]:
    """Element symbols of a topology dict in atom-index order."""
    elements = {}
    for chain in topology["chains"]:
        for residue in chain["residues"]:
            for atom in residue["atoms"]:
                elements[atom["index"]] = atom["element"]
    return [elements[a] for a in range(len(elements))]
