"""A lean depthwise ("uvu") tensor product with per-call weights, equal to e3nn's.

For an input ``x`` with ``U`` channels of each irrep ``l1``, an operand ``y`` of
multiplicity one (spherical harmonics of an edge or of a velocity) and per-row weights
``w``, each path ``(l1, l2 -> l3)`` of e3nn's ``o3.TensorProduct`` in "uvu" mode is

    out[z, u, k] = α_path · w[z, path, u] · Σ_ij C^{l1 l2 l3}_{ijk} x[z, u, i] y_{l2}[z, j]

with ``C`` e3nn's Wigner 3j symbols (``o3.wigner_3j``) and ``α_path`` its path
normalisation (``Instruction.path_weight``). e3nn evaluates every path with its own
einsum over an outer product and slices its input per irrep, whose backward fills a
zero tensor of the whole input per slice. Here all paths that share an ``x`` irrep are
one product: ``M[z] = y[z] · C_{l1}`` (one matrix product, ``C_{l1}`` stacking every
path's 3j block), then ``x_{l1}[z] @ M[z]`` (one batched product), times the weights
gathered once; inputs are split, not sliced. The output layout is e3nn's, so
``ChannelwiseProduct(tp)(x, y, w) == tp(x, y, w)`` to rounding (checked in the tests), and
models keep their e3nn module for their files.

:class:`DepthwiseProduct` is what the layers call: it runs one of the backends in
:data:`BACKENDS` over the same weights ("channelwise", the default; "e3nn", the reference
module itself; "cuequivariance", NVIDIA's kernels, see :mod:`trajcast_engine.nn.cueq`).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor, nn


class ChannelwiseProduct(nn.Module):
    """The same map as an e3nn "uvu" ``o3.TensorProduct`` with external per-row weights
    whose second operand has multiplicity one, computed path group by path group."""

    def __init__(self, reference: o3.TensorProduct) -> None:
        super().__init__()
        self.irreps_in1 = reference.irreps_in1
        self.irreps_in2 = reference.irreps_in2
        self.irreps_out = reference.irreps_out
        self.weight_numel = reference.weight_numel
        if reference.internal_weights or reference.shared_weights:
            raise ValueError("ChannelwiseProduct needs a tensor product with per-call weights")
        if any(mul != 1 for mul, _ in self.irreps_in2):
            raise ValueError(f"second operand must have multiplicity one: {self.irreps_in2}")
        paths_by_input: dict[int, list] = {}
        self.weight_sizes = [self.irreps_in1[ins.i_in1].mul for ins in reference.instructions]
        for path, ins in enumerate(reference.instructions):  # path: place in e3nn's weights
            if ins.connection_mode != "uvu" or not ins.has_weight:
                raise ValueError(f"only weighted 'uvu' paths are supported, got {ins}")
            paths_by_input.setdefault(ins.i_in1, []).append((ins, path))
        self.in1_sizes = [mul * ir.dim for mul, ir in self.irreps_in1]
        self.groups = []  # per x irrep: index, mul, d1, columns, paths (slot, d3, path)
        for i_in1, paths in sorted(paths_by_input.items()):
            mul, ir1 = self.irreps_in1[i_in1]
            columns = sum(self.irreps_out[ins.i_out].ir.dim for ins, _ in paths)
            coupling = torch.zeros(self.irreps_in2.dim, ir1.dim, columns, dtype=torch.float64)
            column, slots = 0, []
            for ins, path in paths:
                ir2 = self.irreps_in2[ins.i_in2].ir
                ir3 = self.irreps_out[ins.i_out].ir
                start2 = self.irreps_in2[: ins.i_in2].dim
                block = ins.path_weight * o3.wigner_3j(ir1.l, ir2.l, ir3.l, dtype=torch.float64)
                coupling[start2 : start2 + ir2.dim, :, column : column + ir3.dim] = block.transpose(
                    0, 1
                )
                slots.append((ins.i_out, ir3.dim, path))
                column += ir3.dim
            name = len(self.groups)
            self.register_buffer(
                f"coupling_{name}", coupling.reshape(self.irreps_in2.dim, -1), persistent=False
            )
            self.groups.append((i_in1, mul, ir1.dim, columns, slots))
        self.out_dims = [mul * ir.dim for mul, ir in self.irreps_out]

    def forward(self, x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
        rows = x.shape[0]
        pieces = torch.split(x, self.in1_sizes, dim=1)
        weights = torch.split(weight, self.weight_sizes, dim=1)  # split: backward is one cat
        outputs: list[Tensor | None] = [None] * len(self.out_dims)
        for name, (i_in1, mul, d1, columns, slots) in enumerate(self.groups):
            coupling = getattr(self, f"coupling_{name}")
            operator = (y @ coupling.to(y.dtype)).view(rows, d1, columns)
            product = torch.bmm(pieces[i_in1].reshape(rows, mul, d1), operator)
            parts = torch.split(product, [d3 for _, d3, _ in slots], dim=2)
            for (i_out, d3, path), part in zip(slots, parts, strict=True):
                scaled = part * weights[path].unsqueeze(2)  # a contiguous copy
                outputs[i_out] = scaled.view(rows, mul * d3)
        missing = [i for i, out in enumerate(outputs) if out is None]
        for i in missing:  # an output irrep no path reaches is zero, as in e3nn
            outputs[i] = x.new_zeros(rows, self.out_dims[i])
        return torch.cat(outputs, dim=1)


BACKENDS = ("channelwise", "e3nn", "cuequivariance")


class DepthwiseProduct(nn.Module):
    """A layer's "uvu" product: e3nn's module (the stored weights' owner) and the
    backend that evaluates it; switch with :func:`set_backend`."""

    def __init__(self, reference: o3.TensorProduct) -> None:
        super().__init__()
        self._reference = [reference]  # registered by the owning layer, not twice here
        self.weight_numel = reference.weight_numel
        self.backend = "channelwise"
        self.kernel: nn.Module = ChannelwiseProduct(reference)

    def set_backend(self, name: str, device: torch.device, dtype: torch.dtype) -> None:
        """Evaluate with backend ``name`` (one of :data:`BACKENDS`)."""
        reference = self._reference[0]
        if name == "channelwise":
            kernel: nn.Module = ChannelwiseProduct(reference)
        elif name == "e3nn":
            kernel = nn.Identity()
        elif name == "cuequivariance":
            from trajcast_engine.nn.cueq import CueqProduct

            kernel = CueqProduct(reference, device=device, dtype=dtype)
        else:
            raise ValueError(f"unknown tensor-product backend {name!r}; choose from {BACKENDS}")
        self.kernel = kernel.to(device=device, dtype=dtype)
        self.backend = name

    def forward(self, x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
        if self.backend == "e3nn":
            return self._reference[0](x, y, weight)
        return self.kernel(x, y, weight)


def set_backend(model: nn.Module, name: str) -> str:
    """Evaluate every depthwise product of ``model`` with backend ``name``; returns a
    one-line description of what now runs (never a silent fallback)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown tensor-product backend {name!r}; choose from {BACKENDS}")
    products = [m for m in model.modules() if isinstance(m, DepthwiseProduct)]
    if not products:
        raise ValueError(f"{type(model).__name__} has no equivariant tensor products")
    parameter = next(model.parameters())
    for product in products:
        product.set_backend(name, parameter.device, parameter.dtype)
    return describe_backend(model)


def describe_backend(model: nn.Module) -> str:
    """Which tensor-product backend ``model`` runs, e.g. ``"channelwise (cpu)"``."""
    products = [m for m in model.modules() if isinstance(m, DepthwiseProduct)]
    if not products:
        return "none (no tensor products)"
    names = sorted({p.backend for p in products})
    detail = {"cuequivariance": products[0].kernel.describe()} if "cuequivariance" in names else {}
    device = next(model.parameters()).device
    return ", ".join(detail.get(n, n) for n in names) + f" ({device})"
