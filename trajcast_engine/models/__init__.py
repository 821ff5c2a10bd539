"""Small trained models shipped with the engine as package data.

Each file was produced by a script in ``examples/`` that regenerates its reference data
and retrains it from scratch on a CPU (named in the model's metadata).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: shipped name -> (file name, the example script that makes it)
SHIPPED = {
    "cu-emt-potential": ("cu_emt_potential.pt", "examples/fit_cu_emt_potential.py"),
}


def shipped_model_path(name: str) -> Path:
    """Path of a shipped model file by its name (see ``SHIPPED``)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; shipped: {sorted(SHIPPED)}")
    path = Path(str(resources.files(__name__).joinpath(SHIPPED[name][0])))
    if not path.is_file():
        raise FileNotFoundError(
            f"shipped model file missing: {path} (regenerate it with {SHIPPED[name][1]})"
        )
    return path
