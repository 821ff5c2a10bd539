"""YAML training configs: one file says what to train, on which data, and how.

    model_type: forecaster            # or: potential
    model:    {...}                   # ForecasterConfig / PotentialConfig fields
    training: {...}                   # ForecastFitSettings / FitSettings fields
    data:
      trajectories: [a.h5, "ref_*_seg*.h5"]  # forecaster: trajectories with velocities
                                      # (relative to this file; patterns expand)
      frame_interval_fs: 10.0         # forecaster, files without times (extxyz, .traj,
                                      # LAMMPS dumps): fs between stored frames
      lammps_types: [Cu]              # forecaster, LAMMPS dumps: element of type 1, 2, ...
      frames: [labelled.extxyz]       # potential: frames with energies and forces
    output: model.pt                  # relative to this file, as is training.init_from

Every key is checked against the dataclass it fills, and every value against the field's
type, before any data is read: an unknown key or a wrong type is an error naming it.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from trajcast_engine.nn.forecaster import ForecasterConfig
from trajcast_engine.nn.potential import PotentialConfig
from trajcast_engine.train.fit_forecaster import ForecastFitSettings
from trajcast_engine.train.fit_potential import FitSettings

SECTIONS = {"model_type", "model", "training", "data", "output"}
KINDS = {
    "forecaster": (ForecasterConfig, ForecastFitSettings, "trajectories"),
    "potential": (PotentialConfig, FitSettings, "frames"),
}


@dataclasses.dataclass
class _DataOptions:
    """The data section's keys besides the file list (forecaster): for files other than
    this engine's HDF5, the fs between stored frames and the element of each LAMMPS type."""

    frame_interval_fs: float | None = None
    lammps_types: list[str | int] | None = None


def _check_types(cls: type, values: dict[str, Any], section: str) -> None:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(
                f"unknown key '{section}.{key}'; {section} takes: {', '.join(sorted(known))}"
            )
        expected = hints[key]
        if not _matches(value, expected):
            raise ValueError(
                f"'{section}.{key}' must be {_describe(expected)}, got {value!r} "
                f"({type(value).__name__})"
            )


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(expected) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is Any:
        return True
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    return getattr(expected, "__name__", str(expected)).replace("typing.", "")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a training config; returns it with the config objects built."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of sections {sorted(SECTIONS)}")
    unknown = set(raw) - SECTIONS
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; sections: {sorted(SECTIONS)}")
    kind = raw.get("model_type")
    if kind not in KINDS:
        raise ValueError(f"model_type must be one of {sorted(KINDS)}, got {kind!r}")
    config_cls, settings_cls, data_key = KINDS[kind]
    model = raw.get("model") or {}
    training = raw.get("training") or {}
    data = raw.get("data") or {}
    for section, values in (("model", model), ("training", training), ("data", data)):
        if not isinstance(values, dict):
            raise ValueError(f"section '{section}' must be a mapping")
    _check_types(config_cls, model, "model")
    _check_types(settings_cls, training, "training")
    options = {f.name for f in dataclasses.fields(_DataOptions)} if kind == "forecaster" else set()
    accepted = {data_key} | options
    extra = set(data) - accepted
    if extra:
        raise ValueError(
            f"unknown key(s) data.{sorted(extra)}; a {kind} reads data.{sorted(accepted)}"
        )
    given = {k: data[k] for k in options & set(data)}
    _check_types(_DataOptions, given, "data")
    sources = data.get(data_key)
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise ValueError(f"data.{data_key} must be a non-empty list of file paths")
    resolved = _expand_sources(sources, path.parent)
    if training.get("init_from"):  # a model file, like the data: relative to this file
        training = {**training, "init_from": str(path.parent / training["init_from"])}
    output = raw.get("output", f"{kind}.pt")
    if not isinstance(output, str):
        raise ValueError(f"output must be a file path, got {output!r}")
    return {
        "model_type": kind,
        "data_options": given,
        "model": config_cls(**model),
        "training": settings_cls(**training),
        "sources": resolved,
        "output": path.parent / output,
    }


def _expand_sources(sources: list[str], base: Path) -> list[str]:
    """Paths relative to the config's folder; shell patterns (``*``, ``?``, ``[...]``)
    expand to the sorted files they match."""
    resolved = []
    for source in sources:
        full = Path(source) if Path(source).is_absolute() else base / source
        if any(c in source for c in "*?["):
            pattern = str(full.relative_to(full.anchor))
            matches = sorted(str(p) for p in Path(full.anchor).glob(pattern))
            if not matches:
                raise FileNotFoundError(f"no data file matches {source!r} (in {base})")
            resolved += matches
        elif not full.is_file():
            raise FileNotFoundError(f"data file not found: {full}")
        else:
            resolved.append(str(full))
    return resolved


def _scalar(value: Any) -> str:
    """One value in YAML flow style, on one line."""
    return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]


def _default(f: dataclasses.Field) -> object:
    """A dataclass field's default value (from its factory where it has one), else None."""
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def default_config(kind: str = "forecaster") -> str:
    """A commented default config (``trajcast train --print-config``)."""
    config_cls, settings_cls, data_key = KINDS[kind]
    lines = [
        "# trajcast train config: every key is optional except data; units Å, fs, K",
        f"model_type: {kind}",
        "model:",
    ]
    for f in dataclasses.fields(config_cls):
        default = [29] if f.name == "species" else _default(f)
        lines.append(f"  {f.name}: {_scalar(default)}")
    lines.append("training:")
    for f in dataclasses.fields(settings_cls):
        lines.append(f"  {f.name}: {_scalar(_default(f))}")
    lines += [
        "data:  # paths relative to this file; patterns such as *_seg*.h5 expand",
        f'  {data_key}: ["reference_seg*.h5"]  # e.g. the files of trajcast generate',
    ]
    if kind == "forecaster":
        lines += [
            "  # frame_interval_fs: 10.0  # extxyz, .traj, LAMMPS dumps: fs between frames",
            "  # lammps_types: [Cu]       # a LAMMPS dump without an element column",
        ]
    lines.append(f"output: {kind}.pt")
    return "\n".join(lines) + "\n"
