"""ASE calculator over the engine's equivariant potential (a thin adapter).

Units are ASE's: energies in eV, forces in eV/Å, stress in eV/Å³ (Voigt order xx, yy,
zz, yz, xz, xy). The neighbour list is a Verlet list rebuilt only when some pair may
have entered the cutoff, so MD steps mostly reuse it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from trajcast_engine.graph import from_atoms
from trajcast_engine.neighbors import VerletNeighborList
from trajcast_engine.nn.config import DTYPES
from trajcast_engine.nn.conservative import ConservativePotential
from trajcast_engine.nn.execution import configure
from trajcast_engine.nn.model_io import load_model


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; a CUDA request without CUDA
    is an error, not a silent fallback."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return device


class TrajcastCalculator(Calculator):
    """Energy, per-atom energies, forces and stress from a potential (the learned
    ``EquivariantPotential`` or the exact ``LennardJonesPotential``).

    ``model`` is a model object or a model-file path; ``dtype`` ("float32"/"float64")
    overrides the model's own (a model object is converted in place, as
    ``Module.to`` does); ``skin`` (Å) sets the Verlet-list reuse; ``tensor_product``
    ("channelwise", the default, "e3nn" or "cuequivariance") and ``compile`` choose how
    the model runs, ``edge_chunk`` bounds its memory (see
    :func:`trajcast_engine.nn.execution.configure`), and ``calc.execution`` says what runs.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: ConservativePotential | str | os.PathLike,
        device: str | torch.device | None = "cpu",
        dtype: str | None = None,
        skin: float = 1.0,
        tensor_product: str | None = None,
        compile: bool = False,
        edge_chunk: int | str | None = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.device = resolve_device(device)
        if not isinstance(model, ConservativePotential):
            model = load_model(model)
            if not isinstance(model, ConservativePotential):
                raise ValueError(f"{model.source} holds a {model.kind}, not a potential")
        if dtype is not None:
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
            model.config.dtype = dtype
        self.model = model.to(device=self.device, dtype=model.dtype).eval()
        self.execution = configure(self.model, tensor_product, compile, edge_chunk)
        self.neighbors = VerletNeighborList(model.config.cutoff, skin)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                "stress is undefined for a structure that is not periodic in all three "
                f"directions (pbc={atoms.pbc.tolist()})"
            )
        graph = from_atoms(atoms, dtype=self.model.dtype, device=self.device)
        pairs = self.neighbors.update(atoms.positions, atoms.cell.array, atoms.pbc)
        out = self.model(graph.with_pairs(pairs), compute_forces=True, compute_stress=want_stress)
        energy = float(out["energy"].detach()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["energies"].detach().cpu().numpy().astype(np.float64),
            "forces": out["forces"].detach().cpu().numpy().astype(np.float64),
        }
        if want_stress:
            stress = out["stress"].detach()[0].cpu().numpy().astype(np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
