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
    edge_chunk: int | None = None,
) -> str:
    """Set ``model``'s backend (None keeps it), compile mode and edge chunk (messages of
    at most that many edges at a time: bounds a step's memory for large systems; None:
    all at once), on its current device and dtype; returns the summary line, e.g.
    ``"tensor products: channelwise (cpu); torch.compile: off"``."""
    if edge_chunk is not None and int(edge_chunk) < 1:
        raise ValueError(f"edge chunk must be a positive number of edges, got {edge_chunk}")
    for layer in getattr(model, "layers", []):
        layer.edge_chunk = None if edge_chunk is None else int(edge_chunk)
    has_products = describe_backend(model) != "none (no tensor products)"
    if tensor_product is not None:
        if not has_products:
            raise ValueError(f"{type(model).__name__} has no tensor products to configure")
        set_backend(model, tensor_product)
    if compile:
        enable_compile(model)
    elif hasattr(model, "layers"):
        disable_compile(model)
    return execution_summary(model)


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
