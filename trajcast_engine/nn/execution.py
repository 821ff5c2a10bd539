"""How a model runs: its tensor-product backend and the opt-in ``torch.compile``.

One entry point for every user-facing loader (``TrajcastCalculator``, the forecaster
rollout, ``trajcast simulate --tensor-product/--compile``), returning the line they
report, so what runs is always said (see :mod:`trajcast_engine.nn.channelwise` and
:mod:`trajcast_engine.nn.compiled`).
"""

from __future__ import annotations

from torch import nn

from trajcast_engine.nn.channelwise import describe_backend, set_backend
from trajcast_engine.nn.compiled import disable_compile, enable_compile


def configure(
    model: nn.Module,
    tensor_product: str | None = None,
    compile: bool = False,
    edge_chunk: int | str | None = "auto",
) -> str:
    """Set ``model``'s backend (None keeps it), compile mode and edge chunk (messages of
    at most that many edges at a time: bounds a step's memory for large systems; None or
    0: all at once; "auto": :data:`CPU_EDGE_CHUNK` on a CPU, :data:`GPU_EDGE_CHUNK` on a
    GPU), on its current device and dtype; returns the summary line, e.g.
    ``"tensor products: channelwise (cpu); torch.compile: off; edges in chunks of 32768"``."""
    chunk = _edge_chunk(model, edge_chunk)
    for layer in getattr(model, "layers", []):
        layer.edge_chunk = chunk
    if tensor_product is not None:  # set_backend refuses a model without tensor products
        set_backend(model, tensor_product)
    if compile:
        enable_compile(model)
    elif hasattr(model, "layers"):
        disable_compile(model)
    return execution_summary(model)


#: default edges per chunk on a CPU: cache-sized chunks made the shipped forecaster's step
#: 1.3-2x faster from 4,000 atoms up and cut its peak memory 4x at 108,000 atoms
#: (benchmarks/rollout.py, benchmarks/README.md)
CPU_EDGE_CHUNK = 32768
#: default on a GPU, sized for memory (not yet timed on one): a paper-size forecaster's
#: messages take about 23 kB per edge in float32 (5,760 floats), so a chunk's tensors stay
#: near 10 GB while the per-atom rest (174 kB/atom measured on a CPU at 4,000 atoms in
#: chunks) lets 100,000 atoms fit in 80 GB; unchunked it needs about 3 MB/atom
GPU_EDGE_CHUNK = 131072


def _edge_chunk(model: nn.Module, edge_chunk: int | str | None) -> int | None:
    if edge_chunk == "auto":
        parameter = next(model.parameters(), None)
        on_cpu = parameter is None or parameter.device.type == "cpu"
        return CPU_EDGE_CHUNK if on_cpu else GPU_EDGE_CHUNK
    if edge_chunk is None or edge_chunk == 0:
        return None
    if isinstance(edge_chunk, str) or int(edge_chunk) < 1:
        raise ValueError(
            f"edge chunk must be a positive number of edges, 0 (all) or 'auto', got {edge_chunk!r}"
        )
    return int(edge_chunk)


def execution_summary(model: nn.Module) -> str:
    """The line that says how ``model`` runs."""
    compiled = (
        "on (checked against eager on first use)"
        if getattr(model, "compiled_layers", None)
        else "off"
    )
    chunks = {getattr(layer, "edge_chunk", None) for layer in getattr(model, "layers", [])}
    chunk = next(iter(chunks)) if len(chunks) == 1 else None
    tail = f"; edges in chunks of {chunk}" if chunk else ""
    return f"tensor products: {describe_backend(model)}; torch.compile: {compiled}{tail}"
