"""Reference molecular dynamics with any ASE calculator, written as training data.

A run is an optional melt (NVT at a high temperature, for a liquid started from a
crystal), an NVT equilibration (Langevin at the target temperature, with the centre of
mass fixed through ASE's ``FixCom`` constraint and ``fixcm=False``, the combination that
samples NVT correctly in ASE 3.29) followed by ``segments`` production segments in NVE
(velocity Verlet; or, for validation references, under the Bussi CSVR thermostat or a
Langevin thermostat on the internal motion, the forecaster's own two), each
written through the HDF5 writer with positions, velocities and
energies in full precision. Between segments a short NVT stretch decorrelates the
segments (TrajCast's protocol: NVT equilibration, then NVE segments; Thiemann et al.,
arXiv 2503.23794, §4). Everything is seeded: the initial Maxwell-Boltzmann velocities and
the Langevin noise come from generators derived from ``seed``.

Units: fs, K, Å. ``calculator`` is ``"emt"`` (ASE's EMT), ``"asap-emt"`` (asap3's
compiled EMT, the ``[reference]`` extra), ``"lj"`` (ASE's Lennard-Jones with the given
parameters), ``"asap-lj"`` (asap3's compiled Lennard-Jones, same parameter names), a
``module:Class`` import path, or any ASE calculator object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.constraints import FixCom
from ase.md import velocitydistribution
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from trajcast_engine.trajectory import TrajectoryReader, TrajectoryWriter


@dataclass
class ReferenceSettings:
    """How a reference run is made (times in fs, temperature in K)."""

    temperature: float = 300.0
    md_timestep: float = 2.0
    equilibration_steps: int = 2000
    segments: int = 1
    segment_steps: int = 5000
    decorrelation_steps: int = 500
    write_every: int = 1
    friction: float = 0.01  # 1/fs, Langevin during equilibration
    production: str = "nve"  # or "csvr" / "langevin": thermostatted segments (validation)
    tau: float = 100.0  # fs, thermostat time of "csvr" / "langevin" production
    thermostat_every: int = 1  # MD steps between the Langevin kicks of "langevin" production
    melt_temperature: float | None = None  # K: first melt (liquids started from a crystal)
    melt_steps: int = 0  # steps of NVT at melt_temperature before the equilibration
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 K, got {self.temperature}")
        if not self.md_timestep > 0:
            raise ValueError(f"md_timestep must be > 0 fs, got {self.md_timestep}")
        for name in ("equilibration_steps", "segments", "segment_steps", "decorrelation_steps",
                     "melt_steps"):  # fmt: skip
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.production not in ("nve", "csvr", "langevin"):
            raise ValueError(
                f"production must be 'nve', 'csvr' or 'langevin', got {self.production!r}"
            )
        if int(self.write_every) < 1 or int(self.segment_steps) < 1:
            raise ValueError("write_every and segment_steps must be >= 1")
        if int(self.thermostat_every) < 1 or not self.tau > 0:
            raise ValueError("thermostat_every must be >= 1 and tau > 0 fs")
        if self.melt_temperature is not None and not self.melt_temperature > 0:
            raise ValueError(f"melt_temperature must be > 0 K, got {self.melt_temperature}")

    @property
    def total_steps(self) -> int:
        """MD steps of the whole run (melt, equilibration, segments, decorrelation)."""
        melt = int(self.melt_steps) if self.melt_temperature is not None else 0
        segments = int(self.segments)
        return (melt + int(self.equilibration_steps) + segments * int(self.segment_steps)
                + max(segments - 1, 0) * int(self.decorrelation_steps))  # fmt: skip


def make_calculator(name: str | Calculator, **parameters: Any) -> Calculator:
    """A calculator by name (``emt``, ``asap-emt``, ``lj``, ``asap-lj``), a ``module:Class`` import
    path, or an object returned as it is."""
    if not isinstance(name, str):
        return name
    key = name.lower()
    if key == "emt":
        from ase.calculators.emt import EMT

        return EMT(**_known(EMT, name, parameters))
    if key == "asap-emt":
        try:
            from asap3 import EMT as AsapEMT
        except ImportError:
            raise ValueError(
                "calculator 'asap-emt' needs asap3: pip install 'trajcast-engine[reference]'"
            ) from None
        return AsapEMT(**parameters)
    if key == "asap-lj":
        return _asap_lennard_jones(**parameters)
    if key == "lj":
        from ase.calculators.lj import LennardJones

        return LennardJones(**_known(LennardJones, name, parameters))
    if ":" in name:
        import importlib

        module, _, cls = name.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)(**parameters)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot import calculator {name!r}: {err}") from None
    raise ValueError(
        f"unknown calculator {name!r}: use {', '.join(CALCULATORS)}, "
        "or module:Class of an ASE calculator"
    )


CALCULATORS = ("emt", "asap-emt", "lj", "asap-lj")


def _known(cls: type, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` if ``cls`` knows them all (ASE calculators accept and ignore
    unknown keyword arguments, which hides a typo)."""
    unknown = sorted(set(parameters) - set(cls.default_parameters))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for calculator {name!r}; "
                         f"known: {sorted(cls.default_parameters)}")  # fmt: skip
    return parameters


def _asap_lennard_jones(
    sigma: float = 1.0, epsilon: float = 1.0, rc: float | None = None, elements=None
) -> Calculator:
    """asap3's compiled Lennard-Jones with ASE's parameter names (σ in Å, ε in eV, cutoff
    ``rc`` in Å, default 3σ), energy shifted to zero at the cutoff; ``elements`` (atomic
    numbers) defaults to argon."""
    try:
        from asap3 import LennardJones as AsapLJ
    except ImportError:
        raise ValueError(
            "calculator 'asap-lj' needs asap3: pip install 'trajcast-engine[reference]'"
        ) from None
    return AsapLJ(list(elements or [18]), float(epsilon), float(sigma),
                  rCut=float(rc if rc is not None else 3.0 * sigma), modified=True)  # fmt: skip


def run_reference_md(
    atoms: Atoms,
    calculator: str | Calculator,
    settings: ReferenceSettings,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    calculator_parameters: dict[str, Any] | None = None,
) -> list[Path]:
    """Run NVT equilibration and NVE segments; returns one HDF5 file per segment,
    named ``{output stem}_seg{k}.h5`` next to ``output``. ``progress(phase, done,
    total)`` is called every 100 steps."""
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"directory does not exist: {output.parent}")
    atoms = atoms.copy()
    atoms.calc = make_calculator(calculator, **(calculator_parameters or {}))
    rng = np.random.default_rng(settings.seed)
    thermalize(atoms, settings.temperature, rng)
    Stationary(atoms)
    dt = settings.md_timestep * units.fs
    provenance = {
        "reference": {
            "calculator": calculator if isinstance(calculator, str) else type(calculator).__name__,
            "parameters": _as_stored(calculator_parameters),
            "settings": asdict(settings),
        }
    }

    def thermalise(steps: int, phase: str, temperature: float = settings.temperature) -> None:
        if steps == 0:
            return
        atoms.set_constraint(FixCom())
        dyn = Langevin(
            atoms,
            dt,
            temperature_K=temperature,
            friction=settings.friction / units.fs,
            fixcm=False,
            rng=np.random.default_rng(rng.integers(2**63)),
        )
        _run(dyn, steps, phase, progress)
        atoms.set_constraint()

    if settings.melt_temperature is not None:
        thermalise(int(settings.melt_steps), "melt", settings.melt_temperature)
    thermalise(int(settings.equilibration_steps), "equilibration")
    paths = []
    for k in range(int(settings.segments)):
        if k:
            thermalise(int(settings.decorrelation_steps), f"decorrelation {k}")
        path = segment_path(output, k)
        if settings.production == "nve":
            dyn = VelocityVerlet(atoms, dt)
        else:  # a thermostat with its own generator (NVE draws none: its data unchanged)
            thermostat = _csvr if settings.production == "csvr" else _internal_langevin
            dyn = thermostat(atoms, dt, settings, np.random.default_rng(rng.integers(2**63)))
        with TrajectoryWriter(
            path,
            atoms,
            overwrite=overwrite,
            dynamics=dyn,
            full_precision=True,
            provenance={**provenance, "segment": k},
        ) as writer:
            dyn.attach(writer, interval=int(settings.write_every))
            _run(dyn, int(settings.segment_steps), f"segment {k}", progress)
        atoms.set_constraint()
        paths.append(path)
    return paths


def segment_path(output: str | os.PathLike, k: int) -> Path:
    """Segment ``k`` of a :func:`run_reference_md` run: ``{output stem}_seg{k}.h5``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_seg{k}.h5")


def finished_segment(
    output: str | os.PathLike,
    calculator: str,
    settings: ReferenceSettings,
    k: int = 0,
    parameters: dict[str, Any] | None = None,
) -> Path | None:
    """Segment ``k`` of ``output`` if :func:`run_reference_md` finished it with this
    calculator, its ``parameters`` and these settings (its provenance records all three, and
    it holds every frame, the first included); ``None`` if it is missing, was cut short (a
    killed run) or ran with another seed, length, thermostat, calculator or parameter."""
    path = segment_path(output, k)
    if not path.exists():
        return None
    with TrajectoryReader(path) as reader:
        ran = reader.provenance.get("reference", {})
        frames = len(reader)
    wanted = json.loads(json.dumps(asdict(settings)))  # as stored: tuples become lists
    complete = frames == int(settings.segment_steps) // int(settings.write_every) + 1
    asked = _as_stored(parameters)
    same = (
        ran.get("calculator") == calculator
        and ran.get("parameters", {}) == asked  # files from before parameters were recorded
        and ran.get("settings") == wanted
    )
    return path if complete and same else None


def _as_stored(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Calculator parameters as the provenance JSON holds them (tuples become lists; values
    JSON cannot hold, e.g. arrays, their ``str``)."""
    return json.loads(json.dumps(dict(parameters or {}), default=str))


def _csvr(atoms: Atoms, dt: float, settings: ReferenceSettings, rng: np.random.Generator):
    """ASE's Bussi thermostat (velocity Verlet with stochastic velocity rescaling; Bussi,
    Donadio and Parrinello, J. Chem. Phys. 126, 014101 (2007)) over the degrees of freedom
    the dynamics actually exchange energy with.

    The thermostat drives the kinetic energy to ``N_dof kT / 2``. Momentum is conserved
    by the forces and only rescaled by the thermostat, so the centre of mass is fixed
    (``FixCom``) and left out: ``N_dof = 3N - 3``. In vacuum the angular momentum is
    conserved too and is only rescaled, never equilibrated: it is zeroed and left out,
    ``N_dof = 3N - 6``. With ASE's default count (3N once the equilibration's constraint
    is lifted) a 22-atom molecule ran 5% hot in its internal motion (66/63).
    """
    from ase.md.bussi import Bussi

    atoms.set_constraint(FixCom())
    n_dof = 3 * len(atoms) - (6 if _zero_conserved_motion(atoms) else 3)
    dyn = Bussi(atoms, dt, settings.temperature, settings.tau * units.fs, rng=rng)
    missing = [a for a in ("ndof", "temp", "target_kinetic_energy") if not hasattr(dyn, a)]
    if missing:  # the count is set through these (ASE 3.23-3.29); refuse rather than run hot
        import ase

        raise RuntimeError(
            f"ASE {ase.__version__}'s Bussi thermostat has no {', '.join(missing)}: cannot "
            f"set its degrees of freedom to {n_dof}; use production='nve' or ASE 3.23-3.29"
        )
    dyn.ndof = n_dof  # ASE's own count comes from the constraints alone
    dyn.target_kinetic_energy = 0.5 * dyn.temp * n_dof
    return dyn


def _zero_conserved_motion(atoms: Atoms) -> bool:
    """Zero the centre-of-mass velocity and, for a system in vacuum of three atoms or more,
    the rigid rotation (both conserved by the forces); True where the rotation was zeroed
    (3N - 6 internal degrees of freedom, else 3N - 3)."""
    Stationary(atoms)
    isolated = not atoms.pbc.any() and len(atoms) > 2
    if isolated:
        ZeroRotation(atoms)
    return isolated


def _internal_langevin(atoms: Atoms, dt: float, settings: ReferenceSettings,
                       rng: np.random.Generator) -> VelocityVerlet:  # fmt: skip
    """Velocity Verlet with an exact Ornstein-Uhlenbeck step on the internal velocities
    every ``thermostat_every`` MD steps: the Langevin thermostat of the forecaster's
    rollouts (:mod:`integrators.thermostats`), so that a rollout and its reference share
    one friction. With ``h = thermostat_every · dt`` and ``c = exp(-h/τ)`` (friction
    γ = 1/τ),

        v_i <- c v_i + sqrt((1 - c²) k_B T / m_i) ξ_i,     ξ_i ~ N(0, 1)³,

    then the centre-of-mass velocity (and in vacuum the rigid rotation) is removed again:
    both start at zero and the forces conserve them, so this removes them from the noise
    alone (the thermostat acts on the 3N - 3, or 3N - 6, internal degrees of freedom).
    Units: fs, K; ASE's velocity units inside. (Leimkuhler & Matthews, Appl. Math. Res.
    Express 2013, 34.)
    """
    atoms.set_constraint(FixCom())
    _zero_conserved_motion(atoms)
    every = int(settings.thermostat_every)
    c = float(np.exp(-every * dt / (settings.tau * units.fs)))
    masses = atoms.get_masses()[:, None]
    sigma = np.sqrt((1.0 - c * c) * units.kB * settings.temperature / masses)

    def kick() -> None:
        v = atoms.get_velocities()
        atoms.set_velocities(c * v + sigma * rng.standard_normal(v.shape))
        _zero_conserved_motion(atoms)

    dyn = VelocityVerlet(atoms, dt)
    dyn.attach(kick, interval=every)
    return dyn


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature`` K (ASE's ``thermalize_momenta`` where
    it exists, 3.29+, else ``MaxwellBoltzmannDistribution``)."""
    if hasattr(velocitydistribution, "thermalize_momenta"):
        velocitydistribution.thermalize_momenta(atoms, temperature, rng=rng)
    else:  # pragma: no cover - older ASE
        velocitydistribution.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)


def _run(dyn, steps: int, phase: str, progress) -> None:
    done = 0
    while done < steps:
        chunk = min(100, steps - done)
        dyn.run(chunk)
        done += chunk
        if progress is not None:
            progress(phase, done, steps)
