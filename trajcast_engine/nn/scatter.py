"""The one scatter-sum of the engine: sum edge features into their receiving atoms.

``out[n] = sum_{e : index[e] = n} src[e]``. Uses ``torch_scatter.scatter_add`` when the
optional ``torch-scatter`` package is installed and ``Tensor.index_add_`` otherwise; both
give the same sums (up to the order of floating-point additions). Set the environment
variable ``TRAJCAST_SCATTER=index_add`` to force the built-in path.
"""

from __future__ import annotations

import os

from torch import Tensor

try:  # optional extra: pip install "trajcast-engine[scatter]"
    import torch_scatter as _torch_scatter
except ImportError:  # pragma: no cover - depends on the environment
    _torch_scatter = None


def scatter_backend() -> str:
    """``"torch_scatter"`` or ``"index_add"``: the path :func:`scatter_sum` takes."""
    forced = os.environ.get("TRAJCAST_SCATTER", "").strip().lower()
    if forced not in ("", "index_add", "torch_scatter"):
        raise ValueError(f"TRAJCAST_SCATTER must be 'index_add' or 'torch_scatter', got {forced!r}")
    if forced == "torch_scatter" and _torch_scatter is None:
        raise ValueError("TRAJCAST_SCATTER=torch_scatter but torch-scatter is not installed")
    if forced:
        return forced
    return "index_add" if _torch_scatter is None else "torch_scatter"


def scatter_sum(src: Tensor, index: Tensor, dim_size: int, out: Tensor | None = None) -> Tensor:
    """Sum rows of ``src`` (E, ...) into ``dim_size`` rows by ``index`` (E,).

    Differentiable in ``src``; rows that no index names are zero. With ``out`` the sums
    are added to it in place (and it is returned): chunks of edges accumulate without a
    new ``dim_size`` tensor per chunk.
    """
    if index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise ValueError(
            f"index must have shape ({src.shape[0]},) to match src, got {tuple(index.shape)}"
        )
    if out is not None and out.shape != (dim_size, *src.shape[1:]):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected ({dim_size}, ...)")
    if scatter_backend() == "torch_scatter":
        return _torch_scatter.scatter_add(src, index, dim=0, dim_size=dim_size, out=out)
    if out is None:
        out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add_(0, index, src)
