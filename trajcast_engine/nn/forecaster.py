"""The TrajCast forecaster: displacement and new velocity over a fixed stride, no forces.

From species, positions (as edge vectors with periodic shifts) and velocities ``v`` at
time ``t`` the model predicts per atom (Thiemann et al., arXiv 2503.23794):

    Δr_i = σ_r · o_i^(1),     v_i(t + Δt) = σ_v · o_i^(2),

two l = 1 odd (polar) vectors read out linearly from the last layer's features and the
input velocity, scaled by the training-set RMS ``σ_r`` (Å) and ``σ_v`` (Å/fs). The
stride ``Δt = stride · md_timestep`` is fixed per model and stored in its file. The node
features start as a species embedding plus ``v / σ_v`` as a vector; every layer is a
:class:`~trajcast_engine.nn.velocity_interaction.VelocityInteraction`, so velocities
condition all of them. A conservation layer (:mod:`trajcast_engine.nn.conservation`) then
restores the input's total momentum and the free flight of the centre of mass, and, when
asked, the angular momentum of systems with no periodic direction.

Units: Å, fs, Å/fs, amu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn

from trajcast_engine.graph import AtomicGraph
from trajcast_engine.nn.compiled import layers_of
from trajcast_engine.nn.config import DTYPES, ModelConfig, SpeciesIndex
from trajcast_engine.nn.conservation import (
    angular_momenta,
    conserve_angular_momentum,
    conserve_momentum,
    constrained_dof,
    momenta,
)
from trajcast_engine.nn.interaction import hidden_irreps
from trajcast_engine.nn.radial import GaussianBasis, RadialEmbedding
from trajcast_engine.nn.velocity_interaction import VelocityInteraction


@dataclass
class ForecasterConfig(ModelConfig):
    """Hyperparameters, stride and fitted constants of :class:`TrajCastForecaster`.

    Defaults are the paper's size (lmax 2, 64 channels of both parities, 4 layers, a
    3x64 radial MLP); shrink ``channels``/``num_layers`` for a small CPU model.
    """

    channels: int = 64
    num_layers: int = 4
    radial_layers: int = 3
    both_parities: bool = True
    num_speed_basis: int = 8
    max_speed: float = 0.05  # Å/fs, top of the speed Gaussians (≈ 4x the RMS speed)
    md_timestep: float = 1.0  # fs, step of the reference MD
    stride: int = 20  # reference steps per forecast step
    displacement_scale: float = 1.0  # Å, RMS of Δr over the training set
    velocity_scale: float = 1.0  # Å/fs, RMS of v' over the training set
    conserve_momentum: bool = True
    conserve_angular_momentum: bool = False  # systems with no periodic direction only

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_speed", "md_timestep", "displacement_scale", "velocity_scale"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if int(self.stride) < 1 or int(self.stride) != self.stride:
            raise ValueError(f"stride must be a positive integer, got {self.stride}")
        if int(self.num_speed_basis) < 2:
            raise ValueError(f"num_speed_basis must be >= 2, got {self.num_speed_basis}")

    @property
    def timestep(self) -> float:
        """The forecast stride Δt in fs."""
        return self.md_timestep * self.stride


class TrajCastForecaster(nn.Module):
    """Predicts ``displacements`` (N, 3) Å and ``velocities`` (N, 3) Å/fs at t + Δt.

    Call it on an :class:`AtomicGraph` with velocities and edges (a Verlet list may
    carry longer edges; they are dropped). The model holds its dtype and never changes
    torch's default dtype.
    """

    kind = "forecaster"

    def __init__(self, config: ForecasterConfig | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = ForecasterConfig.from_dict(config)
        self.config = c = config
        n_species = len(c.species)
        self.species_index = SpeciesIndex(c.species)
        self.irreps_sh = o3.Irreps.spherical_harmonics(c.lmax)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )  # a module, so torch.compile never inspects the Irreps
        self.radial = RadialEmbedding(c.cutoff, c.num_basis, c.envelope_p)
        self.speed_basis = GaussianBasis(c.max_speed, c.num_speed_basis)
        self.embedding = o3.Linear(o3.Irreps(f"{n_species}x0e"), o3.Irreps(f"{c.channels}x0e"))
        irreps_hidden = hidden_irreps(c.channels, c.lmax, c.both_parities)
        irreps = o3.Irreps(f"{c.channels}x0e + 1x1o")
        layers = []
        for _ in range(c.num_layers):
            layer = VelocityInteraction(
                irreps,
                irreps_hidden,
                self.irreps_sh,
                n_species,
                c.num_basis,
                c.radial_hidden,
                c.radial_layers,
                c.num_speed_basis * n_species,
                c.avg_num_neighbors,
            )
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        self.readout = o3.Linear(irreps + o3.Irreps("1x1o"), o3.Irreps("2x1o"))
        self.register_buffer("displacement_scale", torch.tensor(c.displacement_scale))
        self.register_buffer("velocity_scale", torch.tensor(c.velocity_scale))
        self.to(DTYPES[c.dtype])

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.config.dtype]

    @property
    def timestep(self) -> float:
        """The stride Δt (fs) the model was trained for."""
        return self.config.timestep

    def set_normalization(
        self,
        avg_num_neighbors: float,
        displacement_scale: float,
        velocity_scale: float,
        max_speed: float | None = None,
    ) -> None:
        """Fix the data-derived constants (before training)."""
        c = self.config
        c.avg_num_neighbors = float(avg_num_neighbors)
        c.displacement_scale = float(displacement_scale)
        c.velocity_scale = float(velocity_scale)
        for layer in self.layers:
            layer.avg_num_neighbors = c.avg_num_neighbors
        self.displacement_scale.fill_(c.displacement_scale)
        self.velocity_scale.fill_(c.velocity_scale)
        if max_speed is not None:
            c.max_speed = float(max_speed)
            self.speed_basis = GaussianBasis(c.max_speed, c.num_speed_basis).to(
                self.velocity_scale.device, self.dtype
            )

    def angular_systems(self, graph: AtomicGraph) -> Tensor:
        """(S,) bool: systems whose angular momentum the model keeps (no periodic
        direction, and ``conserve_angular_momentum`` set)."""
        isolated = ~graph.pbc.any(dim=1)
        return isolated & bool(self.config.conserve_angular_momentum)

    def constrained_dof(self, graph: AtomicGraph) -> Tensor:
        """(S,) degrees of freedom fixed by the conservation layer (for thermostats)."""
        return constrained_dof(
            graph.positions,
            graph.masses,
            graph.system_idx,
            graph.n_systems,
            bool(self.config.conserve_momentum),
            self.angular_systems(graph),
        )

    def forward(self, graph: AtomicGraph, momentum: Tensor | None = None) -> dict[str, Tensor]:
        """``displacements`` and ``velocities`` (N, 3) at t + Δt; ``momentum`` (S, 3)
        sets the total momentum to keep (default: the input's)."""
        if graph.edge_index is None or graph.edge_shift is None:
            raise ValueError("the graph has no edges: build them with graph.with_neighbors()")
        if graph.velocities is None:
            raise ValueError("the forecaster needs velocities (Å/fs) in the graph")
        if graph.dtype != self.dtype:
            raise ValueError(f"graph is {graph.dtype}, the model is {self.dtype}: graph.to()")
        c = self.config
        index = self.species_index(graph.species)
        onehot = torch.nn.functional.one_hot(index, len(c.species)).to(self.dtype)
        vectors = graph.edge_vectors()
        lengths = torch.linalg.norm(vectors, dim=1)
        keep = lengths < c.cutoff  # Verlet lists carry longer edges
        receivers, senders = graph.edge_index[0][keep], graph.edge_index[1][keep]
        edge_sh = self.spherical_harmonics(vectors[keep])
        edge_radial = self.radial(lengths[keep])

        v = graph.velocities
        velocity_sh = self.spherical_harmonics(v)
        speed = self.speed_basis(torch.linalg.norm(v, dim=1))
        speed_features = (speed[:, :, None] * onehot[:, None, :]).flatten(1)
        v_in = v / self.velocity_scale
        h = torch.cat([self.embedding(onehot), v_in], dim=1)
        for layer in layers_of(self):
            h = layer(h, onehot, edge_sh, edge_radial, receivers, senders, velocity_sh,
                      speed_features)  # fmt: skip
        out = self.readout(torch.cat([h, v_in], dim=1))
        displacements = out[:, :3] * self.displacement_scale
        velocities = out[:, 3:] * self.velocity_scale
        return self.conserve(graph, displacements, velocities, momentum)

    def conserve(
        self,
        graph: AtomicGraph,
        displacements: Tensor,
        velocities: Tensor,
        momentum: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Apply the conservation layer to a raw forecast (see the module docstring)."""
        masses, idx, s = graph.masses, graph.system_idx, graph.n_systems
        if self.config.conserve_momentum or momentum is not None:
            if momentum is None:
                momentum = momenta(graph.velocities, masses, idx, s)
            displacements, velocities = conserve_momentum(
                displacements, velocities, masses, idx, s, momentum, self.timestep
            )
        angular = self.angular_systems(graph)
        if bool(angular.any()):
            target = angular_momenta(graph.positions, graph.velocities, masses, idx, s)
            velocities = conserve_angular_momentum(
                graph.positions + displacements, velocities, masses, idx, s, target, angular
            )
        return {"displacements": displacements, "velocities": velocities}
