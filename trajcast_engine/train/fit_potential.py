"""Fitting the equivariant potential to energies, forces (and stresses) of labelled frames.

Loss per batch (weights configurable):

    L = w_E · mean_s ((E_s - Ê_s) / N_s)²  +  w_F · mean_{i,a} (F_ia - F̂_ia)²
        + w_σ · mean_{s,ab} (σ_sab - σ̂_sab)²

with energies per atom in eV, forces in eV/Å and stress in eV/Å³. Before training, the
per-species reference energies are the least-squares fit of total energies to the
composition, the energy scale is the RMS force component, and the average neighbour count
is taken over the training frames (Batzner et al., Nat. Commun. 13, 2453 (2022)).
Optimisation: Adam (AMSGrad), learning rate reduced on a validation plateau, early
stopping, gradient clipping; the best model (lowest validation loss) is kept and saved.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.io import read

from trajcast_engine.graph import AtomicGraph, from_atoms
from trajcast_engine.nn.potential import EquivariantPotential, PotentialConfig
from trajcast_engine.train.loop import TrainSettings, evaluate_batches, save_final_model, train


@dataclass
class FitSettings(TrainSettings):
    """Optimisation settings of :func:`fit_potential` (loss weights on top of the shared
    :class:`~trajcast_engine.train.loop.TrainSettings`)."""

    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.0


@dataclass
class LabelledFrame:
    """One training frame as tensors: graph with edges and its reference labels."""

    graph: AtomicGraph
    energy: float
    forces: torch.Tensor
    stress: torch.Tensor | None


@dataclass
class FitResult:
    """The fitted model, per-epoch history and held-out errors."""

    model: EquivariantPotential
    history: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)


def load_labelled_frames(sources: Sequence[str | os.PathLike | Atoms]) -> list[Atoms]:
    """Frames with energies and forces from ASE-readable files (extxyz, .traj, ...) or
    ``Atoms`` carrying a calculator; ``ValueError`` names a frame without labels."""
    frames: list[Atoms] = []
    for source in sources:
        if isinstance(source, Atoms):
            items, label = [source], "the given Atoms"
        else:
            items, label = read(source, index=":"), str(source)
        for k, atoms in enumerate(items):
            calc = atoms.calc
            results = {} if calc is None else calc.results
            if "energy" not in results or "forces" not in results:
                raise ValueError(
                    f"frame {k} of {label} has no reference energy and forces: training "
                    "needs both (e.g. extxyz with energy= and forces, or an ASE .traj "
                    "written with a calculator attached)"
                )
            frames.append(atoms)
    if len(frames) < 2:
        raise ValueError(f"need at least 2 labelled frames, got {len(frames)}")
    return frames


def _labelled(atoms: Atoms, cutoff: float, dtype: torch.dtype) -> LabelledFrame:
    results = atoms.calc.results
    stress = None
    if "stress" in results and atoms.pbc.all():
        from ase.stress import voigt_6_to_full_3x3_stress

        stress = torch.as_tensor(voigt_6_to_full_3x3_stress(results["stress"]), dtype=dtype)
    return LabelledFrame(
        graph=from_atoms(atoms, dtype=dtype).with_neighbors(cutoff),
        energy=float(results["energy"]),
        forces=torch.as_tensor(np.asarray(results["forces"]), dtype=dtype),
        stress=stress,
    )


def data_statistics(frames: list[LabelledFrame], species: list[int]) -> dict[str, Any]:
    """Reference energies (least squares on composition), force RMS, mean neighbours."""
    counts = np.array(
        [[int((f.graph.species == z).sum()) for z in species] for f in frames], dtype=float
    )
    energies = np.array([f.energy for f in frames])
    reference, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    forces = torch.cat([f.forces for f in frames])
    force_rms = float(forces.pow(2).mean().sqrt())
    neighbors = sum(f.graph.n_edges for f in frames) / sum(f.graph.n_atoms for f in frames)
    return {
        "reference_energies": reference.tolist(),
        "energy_scale": force_rms if force_rms > 0 else 1.0,
        "avg_num_neighbors": max(neighbors, 1.0),
    }


def _batches(frames: list[LabelledFrame], size: int, rng: np.random.Generator | None):
    order = np.arange(len(frames)) if rng is None else rng.permutation(len(frames))
    for start in range(0, len(frames), size):
        yield [frames[k] for k in order[start : start + size]]


def _losses(model, graph, chosen, stress_ref, settings, device) -> dict[str, torch.Tensor]:
    graph = graph.to(device)
    want_stress = settings.stress_weight > 0 and stress_ref is not None
    out = model(graph, compute_forces=True, compute_stress=want_stress)
    n_atoms = graph.atoms_per_system.to(out["energy"].dtype)
    energy_ref = torch.tensor([f.energy for f in chosen], dtype=out["energy"].dtype, device=device)
    forces_ref = torch.cat([f.forces for f in chosen]).to(device)
    terms = {
        "energy": ((out["energy"] - energy_ref) / n_atoms).pow(2).mean(),
        "forces": (out["forces"] - forces_ref).pow(2).mean(),
        "energy_mae": ((out["energy"] - energy_ref) / n_atoms).abs().mean(),
        "forces_mae": (out["forces"] - forces_ref).abs().mean(),
    }
    total = settings.energy_weight * terms["energy"] + settings.force_weight * terms["forces"]
    if want_stress:
        terms["stress"] = (out["stress"] - stress_ref.to(device)).pow(2).mean()
        total = total + settings.stress_weight * terms["stress"]
    terms["loss"] = total
    terms["count"] = torch.tensor(len(chosen))
    return terms


def _loss_fn(settings: FitSettings):
    def losses(model, chosen: list[LabelledFrame]) -> dict[str, torch.Tensor]:
        graph = AtomicGraph.batch([f.graph for f in chosen])
        stresses = [f.stress for f in chosen]
        stress = torch.stack(stresses) if all(s is not None for s in stresses) else None
        return _losses(model, graph, chosen, stress, settings, settings.device)

    return losses


def evaluate(model, frames: list[LabelledFrame], settings: FitSettings) -> dict[str, float]:
    """Mean loss terms over ``frames`` (energy errors per atom, eV; forces eV/Å)."""
    metrics = evaluate_batches(model, frames, _batches, _loss_fn(settings), settings.batch_size)
    metrics["energy_rmse"] = math.sqrt(metrics["energy"])
    metrics["forces_rmse"] = math.sqrt(metrics["forces"])
    return metrics


def fit_potential(
    sources: Sequence[str | os.PathLike | Atoms],
    config: PotentialConfig | dict[str, Any],
    settings: FitSettings | None = None,
    checkpoint: str | os.PathLike | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
    resume: bool = False,
    progress: bool = False,
) -> FitResult:
    """Fit a potential to labelled frames; returns the best model by validation loss.

    ``sources`` are files ASE reads or ``Atoms`` with a calculator's results. Frames are
    split at random into training and validation sets (``validation_fraction``). The
    best model is written to ``checkpoint`` after every improvement when given. ``log``
    receives each epoch's metrics; ``resume=True`` continues an interrupted run from
    ``checkpoint.state``; ``progress`` shows a bar over each epoch's batches.
    """
    settings = settings or FitSettings()
    if isinstance(config, dict):
        config = PotentialConfig.from_dict(config)
    atoms_frames = load_labelled_frames(sources)
    present = sorted({int(z) for a in atoms_frames for z in a.numbers})
    missing = sorted(set(present) - set(config.species))
    if missing:
        raise ValueError(f"the data hold atomic numbers {missing} absent from config.species")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = EquivariantPotential(copy.deepcopy(config))
    frames = [_labelled(a, config.cutoff, model.dtype) for a in atoms_frames]
    order = rng.permutation(len(frames))
    n_val = max(1, int(round(settings.validation_fraction * len(frames))))
    validation = [frames[k] for k in order[:n_val]]
    training = [frames[k] for k in order[n_val:]]
    stats = data_statistics(training, config.species)
    model.set_normalization(energy_shift=0.0, **stats)
    model.to(settings.device)

    metadata = {
        "training": {
            "frames": len(training),
            "validation_frames": n_val,
            "settings": asdict(settings),
            "statistics": stats,
        },
        "species": config.species,
    }
    history, _ = train(
        model, training, validation, _batches, _loss_fn(settings), settings, metadata,
        checkpoint, log, resume, progress,
    )  # fmt: skip
    final = evaluate(model, validation, settings)
    model.metadata = {**metadata, "validation": final}
    save_final_model(model, checkpoint, settings.device)
    return FitResult(model=model, history=history, validation=final)
