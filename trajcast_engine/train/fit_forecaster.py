"""Training the forecaster on pairs from reference trajectories.

Loss per batch (TrajCast's normalised MSE; Thiemann et al., arXiv 2503.23794, §4):

    L = w_r · mean_{i,a} ((Δr̂_ia - Δr_ia) / σ_r)²  +  w_v · mean_{i,a} ((v̂'_ia - v'_ia) / σ_v)²

with ``σ_r``, ``σ_v`` the training-set RMS of the displacement and new-velocity
components (Å, Å/fs). The average neighbour count, the output scales and the speed-basis
range are fixed from the training split before training; the split is by trajectory.
Reported errors: RMSE of Δr (Å) and v' (Å/fs), and the relative velocity error
``|v̂' - v'| / |v'|`` over all atoms (the paper's 0.4-4% figure).

Input noise (``position_noise`` > 0, training batches only): positions are perturbed by
``δ_i ~ N(0, σ²)`` (mass-weighted mean removed, so momentum targets stay exact) and the
displacement target becomes ``Δr_i - δ_i``, the step that returns to the reference
trajectory. A model trained so learns to undo small errors of its own earlier steps
instead of compounding them (Sanchez-Gonzalez et al., "Learning to Simulate Complex
Physics with Graph Networks", ICML 2020, §3.2). The correction is a dissipation:
thermal displacements that look like noise (high-frequency vibrations) are pulled back
too, so the rollout damps those modes at a rate that grows with ``σ²`` over their thermal
amplitude, and a global thermostat or energy rescaling hands the lost energy to the slow
modes (equipartition lost). Keep ``σ`` well below the thermal amplitudes: the fcc-Cu
model lost equipartition under CSVR at 0.005 Å and kept it at 0.001 Å (its model card).

Noise scaled to the thermal amplitude (``noise_temperature = T₀``): each training
system's σ becomes ``σ · sqrt(T_s / T₀)``, with ``T_s = Σ m_i |v_i|² / (3 N k_B)`` the
kinetic temperature of its input frame. The thermal displacements of a harmonic solid
scale as ``⟨u²⟩ = k_B T / (m ω²)``, so the damping rate ``σ² / ⟨u²⟩`` (above) is then the
same at every temperature of the data, instead of strongest at the coldest.
``noise_exponent = p`` (default 0.5) makes it ``σ · (T_s / T₀)^p``: a ``p`` above 0.5
grows the noise, and so the damping, faster than the harmonic amplitude, for data whose
hot frames the model holds too stiff (the copper card's 900 K attempt).

Rollout loss (``rollout_steps = K > 1``): the model's forecast is fed back as its next
input K - 1 times (edges rebuilt at each new geometry, gradients through the whole chain)
and the loss averages the normalised errors of every step against the reference,

    L_K = (1/K) Σ_{j=1..K} [ w_r · mean((r̂_j - r_j) / σ_r)²  +  w_v · mean((v̂_j - v_j) / σ_v)² ],

positions compared as displacements from the start (noise included). The model then
learns what its own errors do one and several strides later, which a one-step loss never
shows it (the "pushforward" / multi-step losses of Brandstetter, Worrall & Welling,
"Message Passing Neural PDE Solvers", ICLR 2022, §2.3, and of learned simulators
generally). The reported Δr / v' errors stay those of the first step, comparable with
one-step training; ``rollout_velocity_relative`` is the relative velocity error after
the K-th.

Variance kept (reported, not trained on): ``velocity_variance_kept = Σ|v̂'|² / Σ|v'|²``
on the first stride, and ``bond_velocity_variance_kept``, the same for the velocity
differences of bonded atoms (the model's edges) along their bond. A forecaster that damps
keeps less than 1 and loses ``1 - kept`` of that kinetic energy every stride, which a
global thermostat or energy rescaling hands back to all motions alike: the bond figure
below the overall one means the fast relative motions are damped and the slow, collective
ones fed (equipartition lost). Input noise is one cause (errors-in-variables: the
velocity's response to positions is fitted through noisy positions and comes out
shrunk); on 379 pairs of fcc Cu at 300 K the shipped weights (trained with 0.002 Å of
noise) keep 0.99906 overall and 0.99846 along bonds; two epochs with the reversibility
term below and one more without noise, 1.00045 and 1.00025 (the copper card).
A band-resolved version for crystals is the phonon-band balance below.

Phonon-band balance (``mode_balance_weight = w_b > 0``, a crystal whose training systems
are all the lattice of ``mode_balance_lattice``, atom for atom): the harmonic mode
energies ``E_k = ½ ω_k² q_k² + ½ q̇_k²`` (:mod:`trajcast_engine.phonons`, force constants
of ``mode_balance_calculator``) of the forecast state and of the reference state at
``t + Δt``, summed over the batch in each frequency band ``b`` of ``mode_balance_bands``:

    L_b = w_b · mean_b (Σ_{k∈b} Ê_k / Σ_{k∈b} E_k - 1)².

A band whose energy a forecast loses or gains a fraction of a per cent each stride ends up
per cents cold or hot under a global thermostat; the term asks each band's energy to be
kept on average, which the per-pair error does not.

With ``mode_balance_memory = μ > 0`` the training term steers by the running mean of the
band errors instead of each batch's own: with ``e_b = Σ Ê_k / Σ E_k - 1`` of the batch and
``m_b <- μ m_b + (1 - μ) e_b`` (no gradient through ``m_b``),

    L_b = w_b · mean_b (2 m_b e_b),

whose gradient is that of ``w_b mean_b m_b²``: the bias alone. A batch of four 256-atom
copper states scatters ``e_b`` by about 8e-4, four times the bias the term is for (1-4e-4),
so the squared batch error mostly asks for less scatter. Validation reports the squared
batch error either way; μ = 0 is the squared form. Keep ``w_b`` small with memory: the
linear term is unbounded and lags by about ``1/(1 - μ)`` batches (copper, μ = 0.99:
``w_b = 300`` diverged within one epoch, ``w_b = 10`` trained smoothly). The memory is
part of the training state, so a resumed run continues it; under ``torchrun`` each
process keeps the mean of its own share of the batches. Measured on fcc Cu (the
copper card): one epoch of the squared form at ``w_b = 100`` brought the bands' spread
on 2,532 reference states at 300 K from -3.4 to +1.6e-4 about their mean down to -2.6 to
+0.8e-4, and the rollout's band pattern barely moved; one epoch with memory (``w_b = 10``)
on reference pairs plus pairs from the rollout's own states (:mod:`trajcast_engine.data.
relabel`) took the slowest band from 8% cold to 1% and the 6-7 THz band from 4% to 2%
cold, but left the 2-3 THz band 7% hot (6% before, with the same energy rescaling; its
bias +2e-4); a second such round moved the bands around (2-3 THz 9% hot, 0-2 THz 7%
cold). Which of the two changes did what is not separated.

Reversibility loss (``reversibility_weight = w_rev > 0``): Hamiltonian dynamics is
time-reversible, ``Φ ∘ R ∘ Φ = R`` with ``R(r, v) = (r, -v)``: run a stride, flip the
velocities, run another, and the atoms are back where they started with their starting
velocities reversed. The first forecast ``(r + Δr̂, v̂')`` is run back from
``(r + Δr̂, -v̂')`` and

    L_rev = w_rev · [ mean((Δr̂_back + Δr̂) / σ_r)²  +  mean((v̂_back + v) / σ_v)² ].

A reversible map cannot damp a vibration (a reversible linear map of one mode has unit
determinant), so the loss fights the slow, mode-dependent loss or gain of energy that a
global thermostat cannot redistribute (equipartition; see input noise above). It needs
no reference data beyond the input frame. Reversible integrators (velocity Verlet) owe
their long-time energy behaviour to the same property (Hairer, Lubich & Wanner,
"Geometric Numerical Integration", ch. V and XI). Measured on fcc Cu under CSVR: it brought the
neighbour velocity correlation (:func:`trajcast_engine.analysis.neighbour_velocity_correlation`)
from +0.010 to +0.001 against MD's -0.004 (the copper model card); on alanine
dipeptide it did not (its card).
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from integrators.kinetics import KB, kinetic_energies
from trajcast_engine.data.pairs import (
    TrainingPair,
    build_pairs,
    pair_statistics,
    split_by_trajectory,
)
from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.forecaster import ForecasterConfig, TrajCastForecaster
from trajcast_engine.nn.model_io import load_model
from trajcast_engine.nn.scatter import scatter_sum
from trajcast_engine.train.loop import TrainSettings, evaluate_batches, save_final_model, train


@dataclass
class ForecastFitSettings(TrainSettings):
    """Settings of :func:`fit_forecaster` on top of the shared training settings."""

    learning_rate: float = 1e-2
    displacement_weight: float = 1.0
    velocity_weight: float = 1.0
    ema_decay: float = 0.99
    every: int = 1  # use every n-th start frame
    time_reversal: bool = True
    position_noise: float = 0.0  # Å, training-input noise (see the module docstring)
    noise_temperature: float | None = None  # K: σ scales as (T / this)^noise_exponent
    noise_exponent: float = 0.5  # 0.5: as a harmonic crystal's thermal amplitude (module doc)
    rollout_steps: int = 1  # strides chained in the loss (see the module docstring)
    reversibility_weight: float = 0.0  # w_rev: stride, reverse, stride back (module doc)
    # phonon-band energy balance of a crystal (module doc): weight, lattice file, the
    # calculator of its force constants, band edges in THz
    mode_balance_weight: float = 0.0
    mode_balance_lattice: str | None = None
    mode_balance_calculator: str | None = None
    mode_balance_bands: list[float] = field(default_factory=lambda: [0, 2, 3, 4, 5, 6, 7, 8])
    mode_balance_memory: float = 0.0  # EMA decay of the band errors (0: this batch's; module doc)
    init_from: str | None = None  # start from this forecaster file's weights

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.rollout_steps) < 1:
            raise ValueError(f"rollout_steps must be a positive integer, got {self.rollout_steps}")
        if self.position_noise < 0:
            raise ValueError(f"position_noise must be >= 0 Å, got {self.position_noise}")
        if not self.reversibility_weight >= 0:
            raise ValueError(f"reversibility_weight must be >= 0, got {self.reversibility_weight}")
        if not self.mode_balance_weight >= 0:
            raise ValueError(f"mode_balance_weight must be >= 0, got {self.mode_balance_weight}")
        if not 0 <= self.mode_balance_memory < 1:
            raise ValueError(
                f"mode_balance_memory must be in [0, 1), got {self.mode_balance_memory}"
            )
        if self.mode_balance_weight > 0 and not (
            self.mode_balance_lattice and self.mode_balance_calculator
        ):
            raise ValueError(
                "mode_balance_weight needs mode_balance_lattice (a structure file of the "
                "crystal at its sites) and mode_balance_calculator (for its force constants)"
            )
        if self.noise_temperature is not None and not self.noise_temperature > 0:
            raise ValueError(f"noise_temperature must be > 0 K, got {self.noise_temperature}")
        if not self.noise_exponent >= 0:
            raise ValueError(f"noise_exponent must be >= 0, got {self.noise_exponent}")


@dataclass
class ForecastFitResult:
    """The fitted forecaster, per-epoch history and validation errors."""

    model: TrajCastForecaster
    history: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)


def _batches(pairs: list[TrainingPair], size: int, rng: np.random.Generator | None):
    order = np.arange(len(pairs)) if rng is None else rng.permutation(len(pairs))
    for start in range(0, len(pairs), size):
        yield [pairs[k] for k in order[start : start + size]]


def _loss_fn(settings: ForecastFitSettings) -> Callable[[Any, list], dict[str, torch.Tensor]]:
    state: dict[str, torch.Tensor] = {}  # carried between batches, saved with the training
    balance = _mode_balance_fn(settings, state) if settings.mode_balance_weight > 0 else None

    def losses(model: TrajCastForecaster, chosen: list[TrainingPair]) -> dict[str, torch.Tensor]:
        device = settings.device
        graph = AtomicGraph.batch([p.graph for p in chosen]).to(device)
        if graph.edge_index is None:
            graph = graph.with_neighbors(model.config.cutoff)
        steps = int(settings.rollout_steps)
        path = [torch.cat([p.displacements for p in chosen]).to(device)]
        speeds = [torch.cat([p.velocities for p in chosen]).to(device)]
        for j in range(steps - 1):
            path.append(torch.cat([p.later_displacements[j] for p in chosen]).to(device))
            speeds.append(torch.cat([p.later_velocities[j] for p in chosen]).to(device))
        moved = torch.zeros_like(graph.positions)  # the forecasts' sum (noise excluded)
        if model.training and settings.position_noise > 0:
            noise = torch.randn_like(graph.positions) * settings.position_noise
            mass = graph.masses[:, None]
            total = scatter_sum(mass, graph.system_idx, graph.n_systems)
            if settings.noise_temperature is not None:
                scales = noise_scales(graph, settings.noise_temperature, settings.noise_exponent)
                noise = noise * scales[:, None]
            mean = scatter_sum(mass * noise, graph.system_idx, graph.n_systems) / total
            noise = noise - mean[graph.system_idx]
            graph = graph.replace(positions=graph.positions + noise)
            path = [target - noise for target in path]  # back to the reference: Δr - δ
        loss = torch.zeros((), dtype=graph.dtype, device=device)
        for j in range(steps):
            out = model(graph)
            moved = moved + out["displacements"]
            err_r, err_v = moved - path[j], out["velocities"] - speeds[j]
            normalised_r, normalised_v = _normalised(model, err_r, err_v)
            loss = loss + settings.displacement_weight * normalised_r
            loss = loss + settings.velocity_weight * normalised_v
            if j == 0:
                terms = {
                    "displacement": normalised_r,
                    "velocity": normalised_v,
                    "displacement_mse": err_r.pow(2).mean(),
                    "velocity_mse": err_v.pow(2).mean(),
                    "velocity_relative": err_v.norm(dim=1).sum() / speeds[0].norm(dim=1).sum(),
                    **_variance_kept(graph, out["velocities"].detach(), speeds[0]),
                }
                if balance is not None:
                    terms["mode_balance"] = balance(graph, out, path[0], speeds[0], model.training)
                    loss = loss + steps * settings.mode_balance_weight * terms["mode_balance"]
                if settings.reversibility_weight > 0:
                    terms["reversal"] = _reversal_error(model, graph, out)
                    loss = loss + steps * settings.reversibility_weight * terms["reversal"]
            if j + 1 < steps:  # the forecast becomes the next input
                graph = graph.replace(positions=graph.positions + out["displacements"],
                                      velocities=out["velocities"])  # fmt: skip
                graph = graph.with_neighbors(model.config.cutoff)
        if steps > 1:
            terms["rollout_velocity_relative"] = (
                err_v.norm(dim=1).sum() / speeds[-1].norm(dim=1).sum()
            )
        terms["loss"] = loss / steps
        terms["count"] = torch.tensor(len(chosen))
        return terms

    losses.state = state
    return losses


def _variance_kept(
    graph: AtomicGraph, predicted: torch.Tensor, reference: torch.Tensor
) -> dict[str, torch.Tensor]:
    """How much of the reference's velocity variance one forecast keeps (module doc):
    ``Σ|v̂'|² / Σ|v'|²`` over atoms and, over the graph's edges, the same for the
    velocity difference of the two atoms along their bond, ``((v̂'_j - v̂'_i)·r̂_ij)²``."""
    terms = {"velocity_variance_kept": predicted.pow(2).sum() / reference.pow(2).sum()}
    if graph.edge_index is not None:
        i, j = graph.edge_index
        bond = graph.edge_vectors()
        bond = bond / bond.norm(dim=1, keepdim=True)
        along = [((v[j] - v[i]) * bond).sum(1).pow(2).sum() for v in (predicted, reference)]
        terms["bond_velocity_variance_kept"] = along[0] / along[1]
    return terms


@functools.lru_cache(maxsize=4)
def _crystal_modes(lattice_path: str, calculator: str) -> tuple[Any, Any]:
    """``(lattice, modes)`` of the band-balance term, computed once per lattice file and
    calculator (6N force calls), not again for every validation pass."""
    from ase.io import read

    from trajcast_engine.data.reference_md import make_calculator
    from trajcast_engine.phonons import harmonic_modes

    lattice = read(lattice_path)
    return lattice, harmonic_modes(lattice, make_calculator(calculator))


def _mode_balance_fn(
    settings: ForecastFitSettings, state: dict[str, torch.Tensor]
) -> Callable[..., torch.Tensor]:
    """The phonon-band balance term (module doc) for the crystal of
    ``settings.mode_balance_lattice``: its modes computed once, with the force constants
    of ``settings.mode_balance_calculator``; the running mean of the band errors kept in
    ``state['mode_balance_memory']``."""
    from trajcast_engine.phonons import mode_bands, mode_energies

    lattice, modes = _crystal_modes(settings.mode_balance_lattice, settings.mode_balance_calculator)
    band = mode_bands(modes, settings.mode_balance_bands)
    chosen = [np.flatnonzero(band == b) for b in range(len(settings.mode_balance_bands) - 1)]
    chosen = [torch.as_tensor(c) for c in chosen if len(c)]
    n = len(lattice)

    def energies(positions: torch.Tensor, velocities: torch.Tensor) -> torch.Tensor:
        return sum(mode_energies(positions.reshape(-1, n, 3), velocities.reshape(-1, n, 3), modes))

    def balance(graph: AtomicGraph, out: dict, displacements: torch.Tensor,
                velocities: torch.Tensor, training: bool) -> torch.Tensor:  # fmt: skip
        if graph.n_atoms != n * graph.n_systems:
            raise ValueError(
                f"mode_balance_lattice has {n} atoms, the training systems "
                f"{graph.n_atoms // graph.n_systems}"
            )
        predicted = energies(graph.positions + out["displacements"], out["velocities"]).sum(0)
        reference = energies(graph.positions + displacements, velocities).sum(0)
        errors = torch.stack([predicted[c].sum() / reference[c].sum() for c in chosen]) - 1.0
        if not training or settings.mode_balance_memory == 0:
            return errors.pow(2).mean()
        # training with memory: 2 m_b e_b, m_b the running mean of the band errors (module doc)
        latest, mu = errors.detach(), settings.mode_balance_memory
        mean = state.get("mode_balance_memory", latest).to(latest)
        state["mode_balance_memory"] = mu * mean + (1 - mu) * latest
        return 2.0 * (state["mode_balance_memory"] * errors).mean()

    return balance


def _reversal_error(
    model: TrajCastForecaster, graph: AtomicGraph, out: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Normalised squared error of running the forecast ``out`` of ``graph`` back: from
    ``(r + Δr̂, -v̂')`` the model should step ``-Δr̂`` and end at ``-v`` (module doc)."""
    back = graph.replace(positions=graph.positions + out["displacements"],
                         velocities=-out["velocities"])  # fmt: skip
    returned = model(back.with_neighbors(model.config.cutoff))
    err_r = returned["displacements"] + out["displacements"]
    err_v = returned["velocities"] + graph.velocities
    normalised_r, normalised_v = _normalised(model, err_r, err_v)
    return normalised_r + normalised_v


def _normalised(
    model: TrajCastForecaster, err_r: torch.Tensor, err_v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared displacement and velocity errors in units of the model's output
    scales ``σ_r``, ``σ_v`` (the terms of the module docstring's loss)."""
    normalised_r = (err_r / model.displacement_scale).pow(2).mean()
    return normalised_r, (err_v / model.velocity_scale).pow(2).mean()


def noise_scales(graph: AtomicGraph, temperature: float, exponent: float = 0.5) -> torch.Tensor:
    """Per atom, ``(T_s / temperature) ** exponent`` (by default the square root) with
    ``T_s = Σ m |v|² / (3 N k_B)`` the kinetic temperature (K) of the atom's system:
    masses in amu, velocities in Å/fs."""
    kinetic = kinetic_energies(graph.velocities, graph.masses, graph.system_idx, graph.n_systems)
    atoms = graph.atoms_per_system.to(kinetic.dtype)
    kinetic_t = 2.0 * kinetic / (3.0 * atoms * KB)
    return (kinetic_t / temperature).pow(exponent)[graph.system_idx]


def epoch_summary(row: dict[str, Any]) -> str:
    """One line of a forecaster training log row: losses, held-out Δr RMSE (Å), relative
    velocity error (and after the last chained stride, with a rollout loss), velocity
    variance kept (overall and along bonds; module doc), learning rate and elapsed
    seconds."""
    rollout = row.get("val_rollout_velocity_relative")
    kept = row.get("val_bond_velocity_variance_kept")
    return (
        f"epoch {row['epoch']:3d}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}"
        f"  Δr rmse {row['val_displacement_mse'] ** 0.5:.4f} Å"
        f"  |Δv|/|v| {row['val_velocity_relative']:.4f}"
        + (f" (last stride {rollout:.4f})" if rollout is not None else "")
        + (
            f"  v² kept {row['val_velocity_variance_kept']:.5f} (bonds {kept:.5f})"
            if kept is not None
            else ""
        )  # fmt: skip
        + f"  lr {row['lr']:.1e}  {row['seconds']:.0f} s"
    )


def check_rollout_steps(pairs: Sequence[TrainingPair], rollout_steps: int) -> None:
    """A clear error where a pair holds fewer strides of reference than the loss chains
    (pairs built with a smaller ``rollout_steps``)."""
    held = min(p.steps for p in pairs)
    if held < int(rollout_steps):
        raise ValueError(
            f"rollout_steps is {rollout_steps} but the pairs hold {held} stride(s) of "
            f"reference: build them with rollout_steps={rollout_steps}"
        )


def evaluate_forecaster(
    model: TrajCastForecaster, pairs: list[TrainingPair], settings: ForecastFitSettings
) -> dict[str, float]:
    """Validation errors: loss terms, RMSE of Δr (Å) and v' (Å/fs), relative |Δv|/|v|."""
    check_rollout_steps(pairs, settings.rollout_steps)
    with torch.no_grad():
        metrics = evaluate_batches(model, pairs, _batches, _loss_fn(settings), settings.batch_size)
    metrics["displacement_rmse"] = math.sqrt(metrics.pop("displacement_mse"))
    metrics["velocity_rmse"] = math.sqrt(metrics.pop("velocity_mse"))
    return metrics


def fit_forecaster(
    data: Sequence[str | os.PathLike] | tuple[list[TrainingPair], list[TrainingPair]],
    config: ForecasterConfig | dict[str, Any],
    settings: ForecastFitSettings | None = None,
    checkpoint: str | os.PathLike | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = False,
    frame_interval_fs: float | None = None,
    lammps_types: Sequence[str | int] | None = None,
    extra_training: Sequence[TrainingPair] = (),
) -> ForecastFitResult:
    """Train a forecaster with the stride of ``config`` (``md_timestep · stride``).

    ``data`` is a list of trajectory files (split by trajectory) or a ready
    ``(training, validation)`` pair of pair lists; ``extra_training`` pairs join the
    training split only (e.g. a rollout's states with exact strides,
    :func:`~trajcast_engine.data.relabel.pairs_from_states`). The best model by validation loss is
    returned and, with ``checkpoint``, saved there (the latest at ``checkpoint.last``);
    ``resume=True`` continues an interrupted run from ``checkpoint.state``. Edges are
    built once per pair (memory for speed: about 40 bytes per edge). ``progress`` shows
    a bar over each epoch's batches. ``frame_interval_fs`` and ``lammps_types`` describe
    files that are not this engine's HDF5 (see :func:`~trajcast_engine.data.load_trajectory`).
    """
    settings = settings or ForecastFitSettings()
    if isinstance(config, dict):
        config = ForecasterConfig.from_dict(config)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    if isinstance(data, tuple):
        training, validation = data
        sources: list[str] = []
    else:
        sources = [str(s) for s in data]
        pairs = build_pairs(
            sources, config.timestep, settings.every, settings.time_reversal,
            frame_interval_fs, dtype, lammps_types, settings.rollout_steps,
        )  # fmt: skip
        training, validation = split_by_trajectory(
            pairs, settings.validation_fraction, settings.seed
        )
    training = list(training) + list(extra_training)
    if not training or not validation:
        raise ValueError("need training and validation pairs")
    check_rollout_steps(training + validation, settings.rollout_steps)
    present = sorted({int(z) for p in training + validation for z in p.graph.species.tolist()})
    missing = sorted(set(present) - set(config.species))
    if missing:
        raise ValueError(f"the data hold atomic numbers {missing} absent from config.species")
    for pair in training + validation:
        if pair.graph.edge_index is None:
            pair.graph = pair.graph.with_neighbors(config.cutoff)
    torch.manual_seed(settings.seed)
    stats = pair_statistics(training, config.cutoff)
    if settings.init_from:
        model = load_model(settings.init_from)
        if getattr(model, "kind", None) != "forecaster" or model.timestep != config.timestep:
            raise ValueError(
                f"init_from {settings.init_from} is not a forecaster with the stride "
                f"{config.timestep:g} fs"
            )
        model.train()
    else:
        model = TrajCastForecaster(copy.deepcopy(config))
        model.set_normalization(**stats)
    model.to(settings.device)
    info = {
        **(metadata or {}),
        "species": config.species,
        "md_timestep_fs": config.md_timestep,
        "stride": config.stride,
        "timestep_fs": config.timestep,
        "training": {
            "sources": [_recorded_path(s) for s in sources],
            "pairs": len(training),
            "validation_pairs": len(validation),
            "settings": asdict(settings),
            "statistics": stats,
        },
    }
    history, _ = train(
        model, training, validation, _batches, _loss_fn(settings), settings, info, checkpoint,
        log, resume, progress,
    )  # fmt: skip
    final = evaluate_forecaster(model, validation, settings)
    model.metadata = {**info, "validation": final}
    save_final_model(model, checkpoint, settings.device)
    return ForecastFitResult(model=model, history=history, validation=final)


def _recorded_path(source: str) -> str:
    """``source`` as a model file records it: relative to the working directory when it
    lies under it (a shipped model then names ``runs/...``, not the trainer's machine)."""
    relative = os.path.relpath(os.path.abspath(source))
    return source if relative.startswith("..") else relative
