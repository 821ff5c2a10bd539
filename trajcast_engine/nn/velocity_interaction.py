"""A message-passing layer conditioned on each atom's velocity (TrajCast's layer).

For receiver ``i`` with neighbours ``j`` and velocity ``v_i`` (Thiemann et al., "Force-Free
Molecular Dynamics Through Autoregressive Equivariant Networks", arXiv 2503.23794, §2):

    m_i  = (1 / n_avg) Σ_j  W(|r_ij|) · ( L_up(h_j) ⊗ Y(r̂_ij) )      (uvu, as NequIP)
    u_i  = U(|v_i|, z_i) · ( L_mid(m_i) ⊗ Y(v̂_i) )                    (uvu)
    h_i' = ( Gate(L_down(u_i)) + SC(h_i, z_i) ) / sqrt(2)

``W`` is an MLP of the radial embedding of the edge; ``U`` an MLP of the speed embedding
(Gaussians of |v|) mixed per element (the outer product with the one-hot species), so the
speed conditions every layer and ``Y(v̂)`` brings in the direction of motion; ``SC`` is a
species-dependent self-connection (the residual). With component-normalised harmonics
``Y_0 = 1``, so the l = 0 path of the velocity product keeps the pooled message itself.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor, nn

from trajcast_engine.nn.channelwise import DepthwiseProduct
from trajcast_engine.nn.interaction import gate_for, pooled_messages, uvu_tensor_product


class VelocityInteraction(nn.Module):
    """One velocity-conditioned interaction layer (see the module docstring)."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_hidden: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_species: int,
        num_basis: int,
        radial_hidden: int,
        radial_layers: int,
        speed_features: int,
        avg_num_neighbors: float,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        irreps_hidden = o3.Irreps(irreps_hidden)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.edge_chunk: int | None = None  # edges per chunk of messages (None: all)
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)
        self.edge_product, irreps_mid = uvu_tensor_product(self.irreps_in, irreps_sh, irreps_hidden)
        self.edge_kernel = DepthwiseProduct(self.edge_product)
        self.radial = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.edge_product.weight_numel],
            torch.nn.functional.silu,
        )
        self.linear_mid = o3.Linear(irreps_mid.simplify(), irreps_hidden)
        self.velocity_product, irreps_vel = uvu_tensor_product(
            irreps_hidden, irreps_sh, irreps_hidden
        )
        self.velocity_kernel = DepthwiseProduct(self.velocity_product)
        self.speed = FullyConnectedNet(
            [speed_features, radial_hidden, self.velocity_product.weight_numel],
            torch.nn.functional.silu,
        )
        self.gate = gate_for(irreps_hidden)
        self.irreps_out = self.gate.irreps_out
        self.linear_down = o3.Linear(irreps_vel.simplify(), self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(
            self.irreps_in, o3.Irreps(f"{num_species}x0e"), self.irreps_out
        )

    def forward(
        self,
        h: Tensor,
        species_onehot: Tensor,
        edge_sh: Tensor,
        edge_radial: Tensor,
        receivers: Tensor,
        senders: Tensor,
        velocity_sh: Tensor,
        speed_features: Tensor,
    ) -> Tensor:
        pooled = pooled_messages(
            h, self.linear_up, self.edge_kernel, self.radial, edge_sh, edge_radial,
            receivers, senders, self.avg_num_neighbors, self.edge_chunk,
        )  # fmt: skip
        mixed = self.velocity_kernel(
            self.linear_mid(pooled), velocity_sh, self.speed(speed_features)
        )
        update = self.gate(self.linear_down(mixed))
        return (update + self.self_connection(h, species_onehot)) / math.sqrt(2.0)
