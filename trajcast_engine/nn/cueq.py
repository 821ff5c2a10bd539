"""The depthwise product through NVIDIA cuEquivariance (optional: ``pip install
cuequivariance-torch``, plus ``cuequivariance-ops-torch-cu12`` for the CUDA kernels).

cuEquivariance's ``ChannelWiseTensorProduct`` computes the same "uvu" paths as e3nn's
``o3.TensorProduct`` (Geiger & Smidt, arXiv 2207.09453) but orders its paths and outputs
and normalises each path its own way. :class:`CueqProduct` finds the correspondence once,
numerically, in float64 on the CPU: for each e3nn path it switches on that path's weights
alone in both products, finds the cuEquivariance path with the same ``(l1, l2 → l3)`` and
output slot, and records the constant ratio of the two outputs (the construction fails if
any ratio is not constant). At run time the e3nn-ordered weights are permuted and scaled
into cuEquivariance's order and its output columns are permuted back, so a model trained
with e3nn runs unchanged. On CUDA with ``cuequivariance_ops_torch`` installed the "uniform_1d"
kernel runs; otherwise cuEquivariance's own naive PyTorch path does, and
:meth:`CueqProduct.describe` says so.
"""

from __future__ import annotations

import math
import warnings

import torch
from e3nn import o3
from torch import Tensor, nn

from trajcast_engine.nn.channelwise import ChannelwiseProduct


def cuequivariance_available() -> tuple[bool, str]:
    """Whether ``cuequivariance_torch`` imports, and if not, why."""
    try:
        import cuequivariance_torch  # noqa: F401
    except ImportError as err:
        return False, f"cuequivariance-torch is not installed ({err})"
    return True, ""


def _cuda_kernels_available() -> bool:
    try:
        import cuequivariance_ops_torch  # noqa: F401
    except ImportError:
        return False
    return True


def _path_signature(irreps1, irreps2, irreps_out, i1: int, i2: int, i3: int) -> tuple:
    return (str(irreps1[i1].ir), str(irreps2[i2].ir), str(irreps_out[i3].ir))


class CueqProduct(nn.Module):
    """An e3nn "uvu" product with per-call weights evaluated by cuEquivariance."""

    def __init__(
        self, reference: o3.TensorProduct, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().__init__()
        ok, why = cuequivariance_available()
        if not ok:
            raise ImportError(
                f"the 'cuequivariance' backend needs {why.split(' (')[0]}: "
                "pip install cuequivariance-torch (and cuequivariance-ops-torch-cu12 on CUDA)"
            )
        import cuequivariance as cue
        import cuequivariance_torch as cuet

        device = torch.device(device)
        kernels = device.type == "cuda" and _cuda_kernels_available()
        self.method = "uniform_1d" if kernels else "naive"
        self.version = cue.__version__

        def build(target_device, target_dtype, method):
            with warnings.catch_warnings():  # its fallback warning: describe() says it
                warnings.simplefilter("ignore", UserWarning)
                return cuet.ChannelWiseTensorProduct(
                    *irreps,
                    filter_irreps_out=filter_out,
                    layout=cue.mul_ir,
                    shared_weights=False,
                    internal_weights=False,
                    device=target_device,
                    dtype=target_dtype,
                    method=method,
                )

        irreps = [
            cue.Irreps("O3", str(reference.irreps_in1)),
            cue.Irreps("O3", str(reference.irreps_in2)),
        ]
        filter_out = [cue.O3(ir.l, ir.p) for _, ir in reference.irreps_out]
        segments = cue.descriptors.channelwise_tensor_product(*irreps, filter_out)
        segments = list(segments.polynomial.operands[0].segments)  # weights, path by path
        probe = build("cpu", torch.float64, "naive")
        weight_map, scales, columns = self._correspond(reference, probe, segments)
        self.product = build(device, dtype, self.method)
        self.register_buffer("weight_map", weight_map, persistent=False)
        self.register_buffer("weight_scale", scales.to(dtype), persistent=False)
        self.register_buffer("columns", columns, persistent=False)

    @staticmethod
    def _correspond(
        reference: o3.TensorProduct, probe: nn.Module, cue_weight_segments: list[tuple]
    ) -> tuple[Tensor, ...]:
        """Index and scale taking e3nn's weights to cuEquivariance's, and the column order
        taking cuEquivariance's output to e3nn's (see the module docstring)."""
        ours = reference.instructions
        if probe.weight_numel != reference.weight_numel:
            raise ValueError(
                f"cuEquivariance builds {probe.weight_numel} weights where e3nn has "
                f"{reference.weight_numel}; the two products differ"
            )
        irreps_out_cue = o3.Irreps(str(probe.irreps_out))
        if irreps_out_cue.dim != reference.irreps_out.dim:
            raise ValueError("cuEquivariance's output differs in size from e3nn's")
        generator = torch.Generator().manual_seed(0)
        rows = 4
        x = torch.randn(rows, reference.irreps_in1.dim, generator=generator, dtype=torch.float64)
        y = torch.randn(rows, reference.irreps_in2.dim, generator=generator, dtype=torch.float64)
        exact = ChannelwiseProduct(reference).to(torch.float64)  # = e3nn, exact 3j symbols
        weight_sizes = [reference.irreps_in1[ins.i_in1].mul for ins in ours]
        cue_sizes = [math.prod(shape) for shape in cue_weight_segments]
        if len(cue_sizes) != len(ours) or sum(cue_sizes) != reference.weight_numel:
            raise ValueError(
                f"cuEquivariance's product has {len(cue_sizes)} paths where e3nn's has "
                f"{len(ours)}; the two products differ"
            )
        cue_starts = [0]
        for size in cue_sizes:
            cue_starts.append(cue_starts[-1] + size)
        out_slices = irreps_out_cue.slices()

        def cue_output(path: int) -> Tensor:
            w = torch.zeros(rows, probe.weight_numel, dtype=torch.float64)
            w[:, cue_starts[path] : cue_starts[path + 1]] = 1.0
            with torch.no_grad():
                return probe(x, y, w)

        cue_paths = []  # (slot, output) of every cuEquivariance path
        for q in range(len(ours)):
            out = cue_output(q)
            slots = [k for k, s in enumerate(out_slices) if out[:, s].abs().max() > 0]
            if len(slots) != 1:
                raise ValueError(f"cuEquivariance path {q} writes {len(slots)} output slots")
            cue_paths.append((slots[0], out))

        weight_map = torch.empty(reference.weight_numel, dtype=torch.long)
        weight_scale = torch.empty(reference.weight_numel, dtype=torch.float64)
        columns = torch.empty(reference.irreps_out.dim, dtype=torch.long)
        used: set[int] = set()
        start = 0
        for p, ins in enumerate(ours):
            w = torch.zeros(rows, reference.weight_numel, dtype=torch.float64)
            w[:, start : start + weight_sizes[p]] = 1.0
            with torch.no_grad():
                expected = exact(x, y, w)
            mine = expected[:, reference.irreps_out.slices()[ins.i_out]]
            signature = _path_signature(
                reference.irreps_in1, reference.irreps_in2, reference.irreps_out,
                ins.i_in1, ins.i_in2, ins.i_out,
            )  # fmt: skip
            match = None
            for q, (slot, out) in enumerate(cue_paths):
                if q in used or str(irreps_out_cue[slot].ir) != signature[2]:
                    continue
                theirs = out[:, out_slices[slot]]
                scale = (mine * theirs).sum() / (theirs * theirs).sum()
                if torch.allclose(scale * theirs, mine, rtol=1e-9, atol=1e-12):
                    match = (q, slot, float(scale))
                    break
            if match is None:
                raise ValueError(f"no cuEquivariance path reproduces e3nn's path {signature}")
            q, slot, scale = match
            used.add(q)
            size = weight_sizes[p]
            weight_map[cue_starts[q] : cue_starts[q] + size] = torch.arange(start, start + size)
            weight_scale[cue_starts[q] : cue_starts[q] + size] = scale
            ours_slice = reference.irreps_out.slices()[ins.i_out]
            columns[ours_slice] = torch.arange(out_slices[slot].start, out_slices[slot].stop)
            start += size
        return weight_map, weight_scale, columns

    def describe(self) -> str:
        """What runs: the CUDA kernel or cuEquivariance's naive PyTorch fallback."""
        if self.method == "naive":
            return f"cuequivariance {self.version} (naive PyTorch fallback, no CUDA kernels)"
        return f"cuequivariance {self.version} ({self.method} CUDA kernel)"

    def forward(self, x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
        weight = weight.index_select(1, self.weight_map) * self.weight_scale
        return self.product(x, y, weight).index_select(1, self.columns)
