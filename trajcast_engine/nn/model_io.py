"""Model files: a dict loadable with ``torch.load(path, weights_only=True)``.

Contents: ``format`` ("trajcast-engine model"), ``format_version``, ``kind`` (the model
class), ``engine_version``, ``config`` (the JSON-able hyperparameters and fitted
constants), ``state_dict`` and ``metadata`` (species, training-data provenance, the
reference MD step and stride for forecasters, ...). Loading never executes code from the
file and checks every part, so a corrupted or foreign file gives a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trajcast_engine import __version__

FORMAT = "trajcast-engine model"
FORMAT_VERSION = 1


def _model_classes() -> dict[str, type[nn.Module]]:
    from trajcast_engine.nn.forecaster import TrajCastForecaster
    from trajcast_engine.nn.lennard_jones import LennardJonesPotential
    from trajcast_engine.nn.potential import EquivariantPotential

    kinds = (EquivariantPotential, TrajCastForecaster, LennardJonesPotential)
    return {cls.kind: cls for cls in kinds}


def save_model(
    model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (config, weights, metadata) to ``path``; returns the path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory does not exist: {path.parent}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "engine_version": __version__,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written model file
    return path


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The checked payload of a model file (without building the model)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or holds code objects
        raise ValueError(
            f"{path} is not a readable trajcast-engine model file (corrupted, truncated or "
            f"not made by torch.save of plain data): {type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is a torch file but not a trajcast-engine model")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has model-file format {version!r}; this engine ({__version__}) reads "
            f"up to {FORMAT_VERSION}: upgrade trajcast-engine"
        )
    for key, kind in (("config", dict), ("state_dict", dict), ("metadata", dict)):
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"{path} is damaged: its '{key}' entry is missing or malformed")
    if payload.get("kind") not in _model_classes():
        raise ValueError(f"{path} holds an unknown model kind {payload.get('kind')!r}")
    return payload


def load_model(path: str | os.PathLike, device: torch.device | str | None = None) -> nn.Module:
    """Build the model stored at ``path`` in eval mode; ``model.metadata`` holds the file's
    metadata and ``model.source`` its path."""
    payload = read_model_file(path)
    cls = _model_classes()[payload["kind"]]
    try:
        model = cls(payload["config"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: its weights do not match its config: {err}") from None
    model.metadata = payload["metadata"]
    model.source = str(path)
    return model.to(device).eval()
