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
    "ar-lj-forecaster": ("ar_lj_forecaster.pt", "examples/train_ar_lj_forecaster.py"),
    "ar-lj-potential": ("ar_lj_potential.pt", "examples/train_ar_lj_forecaster.py"),
    "ala2-amber-forecaster": ("ala2_amber_forecaster.pt", "examples/train_ala2_forecaster.py"),
}

#: shipped name -> its built-in structure: a file under ``systems/`` or a builder
SYSTEMS = {
    "cu-emt-forecaster": "fcc-cu-256",
    "cu-emt-potential": "fcc-cu-256",
    "ar-lj-forecaster": "systems/liquid_argon_256.extxyz",
    "ar-lj-potential": "systems/liquid_argon_256.extxyz",
    "ala2-amber-forecaster": "systems/alanine_dipeptide.pdb",
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


def system_file(name: str) -> Path:
    """Path of the structure file a shipped model's built-in system is read from."""
    if not str(SYSTEMS.get(name, "")).startswith("systems/"):
        raise ValueError(f"the model {name!r} has no built-in structure file")
    return Path(str(resources.files(__name__).joinpath(SYSTEMS[name])))


def default_system(name: str):
    """The built-in structure of a shipped model (an ``ase.Atoms``), for ``trajcast
    simulate`` without ``--structure``."""
    from ase.build import bulk
    from ase.io import read

    if name not in SYSTEMS:
        raise ValueError(
            f"the model {name!r} has no built-in structure: give one with --structure "
            f"(built-in structures exist for {sorted(SYSTEMS)})"
        )
    if SYSTEMS[name] == "fcc-cu-256":
        return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    atoms = read(system_file(name))
    atoms.calc = None
    return atoms


def model_card(name: str) -> str:
    """The model card of a shipped model: its ``cards/{name}.md`` text, or a summary of
    its file's metadata when no card is written."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; shipped: {sorted(SHIPPED)}")
    card = resources.files(__name__).joinpath("cards", f"{name}.md")
    if card.is_file():
        return card.read_text()
    if not shipped_model_available(name):
        return f"not built: run {SHIPPED[name][1]}"
    from trajcast_engine.nn.model_io import read_model_file

    meta = read_model_file(shipped_model_path(name))["metadata"]
    lines = [f"{key}: {meta[key]}" for key in ("system", "reference", "script") if key in meta]
    if "validation" in meta:
        lines.append(
            "validation: " + ", ".join(f"{k} {v:.4g}" for k, v in meta["validation"].items())
        )
    return "\n".join(lines)
