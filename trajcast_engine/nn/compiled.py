"""Opt-in ``torch.compile`` of a model's interaction layers, checked against eager.

Each layer of a potential or forecaster is compiled on its own (``dynamic=True``: the edge
count changes with every neighbour-list rebuild), the part that carries the cost; the
edge bookkeeping before it stays eager. The first call of every compiled layer also runs
the eager layer on the same input and raises if the outputs differ by more than the
model dtype's tolerance, so a miscompilation stops the run before it produces a frame.
Compilation takes seconds to minutes on the first step and gains little on a CPU (the
layers are memory-bound there); it is meant for CUDA, where it fuses the element-wise
work between the tensor products.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: (rtol, atol) of the first-call check, per model dtype
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-10, 1e-12)}


def _checked(index: int, layer: nn.Module, compiled: Callable) -> Callable:
    state = {"checked": False}

    def run(*args):
        if state["checked"]:
            return compiled(*args)
        got = compiled(*args)
        with torch.no_grad():
            expected = layer(*args)
        rtol, atol = TOLERANCE.get(expected.dtype, TOLERANCE[torch.float32])
        if not torch.allclose(got.detach(), expected, rtol=rtol, atol=atol):
            difference = (got.detach() - expected).abs().max().item()
            raise RuntimeError(
                f"torch.compile changed the output of layer {index} by up to {difference:.2e} "
                f"(tolerance rtol={rtol}, atol={atol}): run without --compile"
            )
        state["checked"] = True
        return got

    return run


def enable_compile(model: nn.Module) -> None:
    """Run ``model.layers`` through ``torch.compile``, each checked on its first call."""
    if not hasattr(model, "layers"):
        raise ValueError(f"{type(model).__name__} has no interaction layers to compile")
    model.compiled_layers = [
        _checked(i, layer, torch.compile(layer, dynamic=True))
        for i, layer in enumerate(model.layers)
    ]


def disable_compile(model: nn.Module) -> None:
    """Back to the eager layers."""
    model.compiled_layers = None


def layers_of(model: nn.Module) -> list[Callable]:
    """The callables a model's forward runs: compiled layers when enabled, else its own."""
    return getattr(model, "compiled_layers", None) or list(model.layers)
