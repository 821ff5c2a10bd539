"""The batched forecaster rollout: the core that every integrator and the CLI drive.

One learned step of length Δt (the model's stride) for all systems of a batch:

    edges  <- Verlet list of r(t) (rebuilt only when needed; positions are wrapped into
              the cell at a rebuild, so wrapping never forces one)
    v      <- thermostat.before(v)                      (Langevin: O half step)
    Δr, v' <- forecaster(species, r, v)                 (+ conservation layer)
    v'     <- energy rescaling to U(r) + K(v) (optional)
    v'     <- thermostat.after(v')                      (CSVR, or Langevin O half step)
    guard checks (NaN/inf, displacement, temperature), then commit
    r(t + Δt) = r(t) + Δr,  v(t + Δt) = v'

No forces are evaluated. State stays on the model's device between steps; only the
positions travel to the host for the Numba neighbour list. Random numbers come from one
seeded ``numpy.random.Generator`` per system. Units: Å, fs, Å/fs, amu, K.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from integrators.energy_rescale import EnergyRescaler
from integrators.guard import StabilityGuard
from integrators.kinetics import (
    KB,
    constrained_shares,
    decompose_velocities,
    kinetic_energies,
    species_temperatures,
)
from integrators.thermostats import Thermostat
from trajcast_engine.graph import AtomicGraph
from trajcast_engine.neighbors import VerletNeighborList
from trajcast_engine.neighbors.torch_cell_list import TorchVerletNeighborList, supports
from trajcast_engine.nn.model_io import load_model


def load_forecaster(
    model: nn.Module | str | os.PathLike,
    device: torch.device | str | None = None,
    dtype: str | None = None,
    tensor_product: str | None = None,
    compile: bool = False,
    edge_chunk: int | str | None = "auto",
) -> nn.Module:
    """A forecaster object, model file or shipped model name, on ``device`` in ``dtype``,
    evaluated with the ``tensor_product`` backend (None: the default, channel-wise) and,
    if asked, ``torch.compile`` and edge chunks (see
    :func:`trajcast_engine.nn.execution.configure`)."""
    from trajcast_engine.calculator import resolve_device
    from trajcast_engine.nn.config import DTYPES

    device = resolve_device(device)
    if not isinstance(model, nn.Module):
        from trajcast_engine.models import SHIPPED, shipped_model_path

        path = shipped_model_path(str(model)) if str(model) in SHIPPED else model
        model = load_model(path)
    if getattr(model, "kind", None) != "forecaster":
        source = getattr(model, "source", type(model).__name__)
        raise ValueError(f"{source} is a {getattr(model, 'kind', '?')}, not a forecaster")
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        model.config.dtype = dtype
    model = model.to(device=device, dtype=model.dtype).eval()
    from trajcast_engine.nn.execution import configure

    configure(model, tensor_product, compile, edge_chunk)
    return model


def check_timestep(model: nn.Module, timestep_fs: float | None) -> float:
    """The model's stride Δt (fs); an error naming both values if another is asked for."""
    c = model.config
    stride = float(model.timestep)
    if timestep_fs is not None and not np.isclose(float(timestep_fs), stride, rtol=1e-9):
        raise ValueError(
            f"the model was trained for a timestep of {stride:g} fs ({c.stride} reference "
            f"steps of {c.md_timestep:g} fs); a timestep of {float(timestep_fs):g} fs was "
            "asked for. A forecaster's stride is fixed: use its own, or train another model"
        )
    return stride


def make_rngs(seed: int | Sequence[int] | None, n_systems: int) -> list[np.random.Generator]:
    """One generator per system: a sequence gives one seed each; one integer seeds a
    single system directly and spawns independent streams for a batch."""
    if seed is not None and not isinstance(seed, int | np.integer):
        seeds = list(seed)
        if len(seeds) != n_systems:
            raise ValueError(f"{len(seeds)} seeds given for {n_systems} systems")
        return [np.random.default_rng(int(s)) for s in seeds]
    if n_systems == 1:
        return [np.random.default_rng(seed)]
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_systems)]


class ForecastRollout:
    """Advances a batch of systems with a forecaster, Δt at a time (module docstring).

    ``graph`` needs velocities (Å/fs); it is moved to the model's device and dtype.
    ``thermostat`` is a :class:`~integrators.thermostats.Thermostat` or None (NVE);
    ``seed`` seeds the per-system generators; ``skin`` (Å) sets the Verlet reuse;
    ``rescaler`` an optional :class:`~integrators.energy_rescale.EnergyRescaler` that
    makes each learned step conserve energy; ``neighbor_backend``: ``numba`` (CPU cell
    list, positions travel to the host), ``torch`` (a cell list on the model's device,
    for fully periodic cells at least three cutoffs wide) or ``auto`` (torch on CUDA when
    the cells allow it, else numba). The state is ``graph.positions``/``graph.velocities``,
    ``step_count`` and ``time_fs``.
    """

    def __init__(
        self,
        model: nn.Module,
        graph: AtomicGraph,
        *,
        thermostat: Thermostat | None = None,
        seed: int | Sequence[int] | None = None,
        skin: float = 1.0,
        guard: StabilityGuard | None = None,
        rescaler: EnergyRescaler | None = None,
        neighbor_backend: str = "auto",
    ) -> None:
        if neighbor_backend not in ("auto", "numba", "torch"):
            raise ValueError(
                f"neighbor_backend must be auto, numba or torch, got {neighbor_backend!r}"
            )
        if getattr(model, "kind", None) != "forecaster":
            raise ValueError(f"a rollout needs a forecaster, got {type(model).__name__}")
        if graph.velocities is None:
            raise ValueError(
                "the rollout needs velocities: set them (e.g. MaxwellBoltzmannDistribution) "
                "before starting"
            )
        self.model = model
        self.timestep = float(model.timestep)
        device = next(model.buffers()).device
        self.graph = graph.replace(edge_index=None, edge_shift=None).to(device, model.dtype)
        model.species_index(self.graph.species)  # unknown elements fail here, not mid-run
        self.thermostat = thermostat
        if thermostat is not None:
            thermostat.bind(self.timestep)
        self.rescaler = rescaler
        self.guard = guard or StabilityGuard()
        self.neighbors = VerletNeighborList(model.config.cutoff, skin)
        g = self.graph
        fits_torch = supports(g.cell, g.pbc, model.config.cutoff + skin)
        if neighbor_backend == "torch" and not fits_torch:
            raise ValueError(
                "neighbor_backend='torch' needs fully periodic cells at least three "
                "(cutoff + skin) wide; use 'numba'"
            )
        use_torch = neighbor_backend == "torch" or (
            neighbor_backend == "auto" and g.device.type == "cuda" and fits_torch
        )
        if use_torch:
            self.neighbors = TorchVerletNeighborList(model.config.cutoff, skin)
        self.neighbor_backend = "torch" if use_torch else "numba"
        self.rngs = make_rngs(seed, self.graph.n_systems)
        self.step_count = 0
        self.time_fs = 0.0
        self.timings: dict[str, float] | None = None
        self._clock = 0.0
        self._device_pairs = None  # the Numba list's pairs and their device copies
        self.next_positions = self.graph.positions  # set by each step before "after" hooks
        self.remove_com = bool(getattr(model.config, "conserve_momentum", False))
        self._update_dof()
        self.initial_temperatures = self.temperatures()
        if rescaler is not None:
            rescaler.start(self)

    def _update_dof(self) -> None:
        g = self.graph
        kept = getattr(self.model, "angular_systems", None)  # stand-in models may lack it
        self.angular = None if kept is None else kept(g)  # (S,) bool: angular momentum kept
        counts = g.atoms_per_system.cpu().numpy()
        constrained = self.model.constrained_dof(g).cpu().numpy()
        self.degrees_of_freedom = (3 * counts - constrained).astype(np.float64)

    # ---- observables -----------------------------------------------------------------
    def split(
        self, velocities: Tensor, positions: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(thermal, rotation, com)`` parts of ``velocities`` at ``positions`` (default
        the current ones): what the conservation layer keeps (centre-of-mass motion,
        rigid rotation of isolated systems) carries no heat (:mod:`integrators.kinetics`)."""
        g = self.graph
        return decompose_velocities(
            velocities, g.positions if positions is None else positions, g.masses,
            g.system_idx, g.n_systems, self.remove_com, self.angular,
        )  # fmt: skip

    def thermal(self, velocities: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        """Thermal velocities: minus the centre-of-mass velocity (when momentum is kept) and
        the rigid rotation (when angular momentum is kept)."""
        return self.split(self.graph.velocities if velocities is None else velocities, positions)[0]

    def kinetic_energy(
        self, velocities: Tensor | None = None, positions: Tensor | None = None
    ) -> np.ndarray:
        """(S,) thermal kinetic energy in eV."""
        g = self.graph
        thermal = self.thermal(velocities, positions)
        return kinetic_energies(thermal, g.masses, g.system_idx, g.n_systems).detach().cpu().numpy()

    def temperatures(
        self, velocities: Tensor | None = None, positions: Tensor | None = None
    ) -> np.ndarray:
        """(S,) instantaneous temperature in K (``2K / (N_dof k_B)``)."""
        dof = np.maximum(self.degrees_of_freedom, 1)
        return 2.0 * self.kinetic_energy(velocities, positions) / (dof * KB)

    def species_temperatures(self) -> dict[int, np.ndarray]:
        """``{Z: (S,) K}`` per-element temperatures (equipartition check)."""
        g = self.graph
        shares = constrained_shares(g.positions, g.masses, g.system_idx, g.n_systems,
                                    self.remove_com, self.angular)  # fmt: skip
        return species_temperatures(
            self.thermal(), g.masses, g.species, g.system_idx, g.n_systems, shares
        )

    def target_temperatures(self, time_fs: float | None = None) -> np.ndarray | None:
        """(S,) thermostat targets (K) at ``time_fs`` (default now), None in NVE."""
        if self.thermostat is None:
            return None
        t = self.time_fs if time_fs is None else time_fs
        return self.thermostat.targets(t, self.graph.n_systems)

    # ---- the step ----------------------------------------------------------------------
    def _edges(self) -> AtomicGraph:
        if self.neighbor_backend == "torch":  # on the device; shifts absorb wrapping
            g = self.graph
            index, shift = self.neighbors.update(g.positions, g.cell, g.pbc, g.ptr)
            return g.replace(edge_index=index, edge_shift=shift)
        positions, cells, pbc, ptr = self.graph.numpy_geometry()
        self._mark("transfer")  # device -> host (the Numba list runs on the CPU)
        rebuild = self.neighbors.needs_rebuild(positions, cells, pbc, ptr)
        if rebuild:
            self.graph = self.graph.replace(positions=self.wrapped_positions())
            positions = self.graph.positions.detach().to("cpu", torch.float64).numpy()
        pairs = self.neighbors.update(positions, cells, pbc, ptr, rebuild=rebuild)
        self._mark("neighbours")
        if self._device_pairs is None or self._device_pairs[0] is not pairs:
            edges = self.graph.with_pairs(pairs)  # host -> device, after a rebuild only
            self._device_pairs = (pairs, edges.edge_index, edges.edge_shift)
        _, index, shift = self._device_pairs
        self._mark("transfer")
        return self.graph.replace(edge_index=index, edge_shift=shift)

    def wrapped_positions(self) -> Tensor:
        """Positions wrapped into the cell along periodic directions."""
        g = self.graph
        cell = g.cell[g.system_idx]
        periodic = g.pbc[g.system_idx]
        if not bool(periodic.any()):
            return g.positions
        fractional = torch.linalg.solve(cell.transpose(1, 2), g.positions.unsqueeze(-1))
        fractional = fractional.squeeze(-1)
        fractional = torch.where(periodic, fractional - torch.floor(fractional), fractional)
        return torch.einsum("ni,nij->nj", fractional, cell)

    def _mark(self, phase: str) -> None:
        """Add the time since the last mark to ``timings[phase]`` (when profiling)."""
        if self.timings is None:
            return
        if self.graph.device.type == "cuda":
            torch.cuda.synchronize(self.graph.device)
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._clock
        self._clock = now

    def profile(self, enabled: bool = True) -> None:
        """Accumulate seconds per phase of :meth:`step` in ``timings`` (transfer, neighbours,
        thermostat, model, checks, energy rescaling); it synchronises CUDA, so it costs a
        little."""
        self.timings = {} if enabled else None

    def step(self) -> None:
        """One learned step of Δt for every system (see the module docstring)."""
        self._clock = time.perf_counter()
        graph = self._edges()
        self._mark("neighbours")
        velocities = graph.velocities
        if self.thermostat is not None:
            velocities = self.thermostat.before(self, velocities)
        self._mark("thermostat")
        energy = None
        if self.rescaler is not None:
            energy = self.rescaler.total_energy(self, velocities)
        with torch.no_grad():
            out = self.model(graph.replace(velocities=velocities))
        self._mark("model")
        displacements, velocities = out["displacements"], out["velocities"]
        step = self.step_count + 1
        g = self.graph
        self.guard.check_forecast(step, displacements, velocities, g.species, g.system_idx, g.ptr)
        positions = graph.positions + displacements
        self.next_positions = positions  # where the new velocities belong (thermostats)
        self._mark("checks")
        if self.rescaler is not None:
            velocities = self.rescaler.apply(self, positions, velocities, energy)
            self._mark("energy rescaling")
        if self.thermostat is not None:
            velocities = self.thermostat.after(self, velocities)
        self._mark("thermostat")
        temperatures = self.temperatures(velocities, positions)
        reference = self.target_temperatures(self.time_fs + self.timestep)
        if reference is None:
            reference = self.initial_temperatures
        self.guard.check_temperature(step, temperatures, reference)
        self.graph = self.graph.replace(positions=positions, velocities=velocities)
        self.step_count += 1
        self.time_fs += self.timestep
        self._mark("checks")

    def run(self, steps: int) -> None:
        """``steps`` learned steps."""
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        for _ in range(int(steps)):
            self.step()

    def set_state(
        self, positions: Tensor | np.ndarray, velocities: Tensor | np.ndarray, cell=None
    ) -> None:
        """Replace positions (Å), velocities (Å/fs) and optionally cells (Å)."""
        g = self.graph

        def as_tensor(x):
            return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(
                g.device, g.dtype
            )

        changes = {"positions": as_tensor(positions), "velocities": as_tensor(velocities)}
        if cell is not None:
            changes["cell"] = as_tensor(cell).reshape(g.cell.shape)
        self.graph = g.replace(**changes)
        self._update_dof()

    # ---- random state (resume) -------------------------------------------------------
    def rng_state(self) -> list[dict]:
        """JSON-able state of the per-system generators."""
        return [rng.bit_generator.state for rng in self.rngs]

    def set_rng_state(self, states: list[dict]) -> None:
        """Restore :meth:`rng_state` output."""
        if len(states) != len(self.rngs):
            raise ValueError(f"{len(states)} generator states for {len(self.rngs)} systems")
        for rng, state in zip(self.rngs, states, strict=True):
            rng.bit_generator.state = state
