"""One equivariant message-passing layer (the NequIP interaction block).

For receiver ``i`` with neighbours ``j`` (Batzner et al., Nat. Commun. 13, 2453 (2022)):

    m_i = (1 / n_avg) Σ_j  W(|r_ij|) · ( L_up(h_j) ⊗ Y(r̂_ij) )
    h_i' = Gate( L_down(m_i) + SI(h_i, z_i) )

``Y`` are real spherical harmonics up to ``lmax``; ``⊗`` is a depthwise ("uvu") tensor
product whose per-edge path weights ``W`` come from an MLP of the radial embedding;
``n_avg`` is the average neighbour count fixed from data; ``SI`` is a species-dependent
self-interaction (a tensor product with the one-hot species), the residual path; the
gate applies SiLU to even scalars (tanh to odd ones) and multiplies each l > 0 irrep
by a sigmoid-gated scalar.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import Tensor, nn

from trajcast_engine.nn.channelwise import DepthwiseProduct
from trajcast_engine.nn.scatter import scatter_sum


def hidden_irreps(channels: int, lmax: int, both_parities: bool = False) -> o3.Irreps:
    """``channels`` copies of every irrep up to ``lmax`` (true tensors, or both parities)."""
    irreps = []
    for l in range(lmax + 1):  # noqa: E741 (the usual name of the degree)
        parities = (1, -1) if both_parities else ((-1) ** l,)
        irreps += [(channels, (l, p)) for p in parities]
    return o3.Irreps(irreps)


def uvu_tensor_product(
    irreps_in: o3.Irreps, irreps_other: o3.Irreps, targets: o3.Irreps
) -> tuple[o3.TensorProduct, o3.Irreps]:
    """Depthwise ("uvu") tensor product of ``irreps_in`` with ``irreps_other`` keeping
    the outputs whose irrep occurs in ``targets``; weights are given per call (one set
    per edge or atom). Returns the product and its (sorted, unsimplified) output irreps.
    """
    wanted = {ir for _, ir in o3.Irreps(targets)}
    mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(o3.Irreps(irreps_in)):
        for j, (_, ir_other) in enumerate(o3.Irreps(irreps_other)):
            for ir_out in ir_in * ir_other:
                if ir_out in wanted:
                    instructions.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    irreps_mid, permutation, _ = o3.Irreps(mid).sort()
    instructions = [(i, j, permutation[k], m, t) for i, j, k, m, t in instructions]
    product = o3.TensorProduct(
        irreps_in,
        irreps_other,
        irreps_mid,
        instructions,
        shared_weights=False,
        internal_weights=False,
    )
    return product, irreps_mid


def gate_for(irreps_out: o3.Irreps) -> Gate:
    """Gated nonlinearity producing ``irreps_out``: SiLU on even scalars, tanh on odd
    ones (an odd function keeps their parity), and each l > 0 irrep multiplied by a
    sigmoid of its own extra scalar."""
    irreps_out = o3.Irreps(irreps_out)
    scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
    return Gate(scalars, acts, gates, [torch.sigmoid] * len(gates), gated)


def pooled_messages(
    h: Tensor,
    linear_up: nn.Module,
    product: nn.Module,
    radial: nn.Module,
    edge_sh: Tensor,
    edge_radial: Tensor,
    receivers: Tensor,
    senders: Tensor,
    avg_num_neighbors: float,
    edge_chunk: int | None = None,
) -> Tensor:
    """``m_i = (1 / n_avg) Σ_j W(|r_ij|) · (L_up(h_j) ⊗ Y(r̂_ij))``, the NequIP message sum
    both models' layers start from. With ``edge_chunk`` the edges are taken that many at
    a time and their sums accumulated, so the per-edge messages (the largest tensors of a
    step) never exist for all edges at once; the result is the same sum."""
    up = linear_up(h)
    n_edges = senders.shape[0]
    if edge_chunk is None or n_edges <= edge_chunk:
        messages = product(up[senders], edge_sh, radial(edge_radial))
        return scatter_sum(messages, receivers, h.shape[0]) / avg_num_neighbors
    pooled = None
    for start in range(0, n_edges, int(edge_chunk)):
        part = slice(start, start + int(edge_chunk))
        messages = product(up[senders[part]], edge_sh[part], radial(edge_radial[part]))
        pooled = scatter_sum(messages, receivers[part], h.shape[0], out=pooled)
    return pooled / avg_num_neighbors


class InteractionBlock(nn.Module):
    """Messages ``W(r) · (h_j ⊗ Y(r̂))`` summed over neighbours, then gate and residual."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_species: int,
        num_basis: int,
        radial_hidden: int,
        radial_layers: int,
        avg_num_neighbors: float,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.edge_chunk: int | None = None  # edges per chunk of messages (None: all)
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)

        self.tensor_product, irreps_mid = uvu_tensor_product(
            self.irreps_in, irreps_sh, o3.Irreps(irreps_out)
        )
        self.edge_product = DepthwiseProduct(self.tensor_product)
        self.radial = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.tensor_product.weight_numel],
            torch.nn.functional.silu,
        )

        self.gate = gate_for(o3.Irreps(irreps_out))
        self.irreps_out = self.gate.irreps_out
        self.linear_down = o3.Linear(irreps_mid.simplify(), self.gate.irreps_in)
        self.self_interaction = o3.FullyConnectedTensorProduct(
            self.irreps_in, o3.Irreps(f"{num_species}x0e"), self.gate.irreps_in
        )

    def forward(
        self,
        h: Tensor,
        species_onehot: Tensor,
        edge_sh: Tensor,
        edge_radial: Tensor,
        receivers: Tensor,
        senders: Tensor,
    ) -> Tensor:
        pooled = pooled_messages(
            h, self.linear_up, self.edge_product, self.radial, edge_sh, edge_radial,
            receivers, senders, self.avg_num_neighbors, self.edge_chunk,
        )  # fmt: skip
        return self.gate(self.linear_down(pooled) + self.self_interaction(h, species_onehot))
