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
    "cu-emt-forecaster": ("cu_emt_forecaster.pt", "examples/train_cu_emt_forecaster.py"),
}


def shipped_model_available(name: str) -> bool:
    """Whether the shipped model ``name`` has its file in this installation."""
    return name in SHIPPED and resources.files(__name__).joinpath(SHIPPED[name][0]).is_file()


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


def default_system(name: str):
    """The built-in structure of a shipped model (an ``ase.Atoms``), for ``trajcast
    simulate`` without ``--structure``."""
    from ase.build import bulk

    systems = {
        "cu-emt-forecaster": lambda: bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4),
        "cu-emt-potential": lambda: bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4),
    }
    if name not in systems:
        raise ValueError(
            f"the model {name!r} has no built-in structure: give one with --structure "
            f"(built-in structures exist for {sorted(systems)})"
        )
    return systems[name]()
