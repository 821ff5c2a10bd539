"""``trajcast simulate``: a forecaster rollout from a structure to an mdtraj HDF5 file.

The run: load the model (a shipped name or a file), build the structure (a file ASE
reads, or the model's built-in system), draw Maxwell-Boltzmann velocities at the target
temperature from ``seed`` (zero total momentum; for a molecule in vacuum zero angular
momentum too, :func:`start_velocities`), then advance with the large-timestep
integrator under the chosen thermostat, writing every ``write_every`` steps to
``output`` (positions, velocities, temperature; the per-system random-generator state
goes with each flush so that ``resume`` continues the same run) and a text log next to
it. SIGINT (Ctrl-C) stops after the current step, flushes the file and says how to
resume.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from trajcast_engine.progress import progress_bar

DEFAULT_MODEL = "cu-emt-forecaster"


@dataclass
class SimulationReport:
    """What a finished (or interrupted) run did."""

    output: Path
    log: Path
    steps: int
    simulated_ps: float
    wall_seconds: float
    interrupted: bool
    mean_temperature: float
    execution: str = ""
    equilibration_ps: float = 0.0
    steps_left: int = 0  # of those asked for, after the file's last frame (what --resume runs)

    @property
    def ns_per_day(self) -> float:
        return self.simulated_ps * 1e-3 / max(self.wall_seconds, 1e-9) * 86400.0


def parse_temperature(text: str | float | Sequence[float]) -> float | tuple[float, float]:
    """``"300"`` -> 300.0; ``"300:900"`` -> a ramp (300.0, 900.0). Temperatures in K > 0."""
    if isinstance(text, int | float):
        values = [float(text)]
    elif isinstance(text, str):
        try:
            values = [float(v) for v in text.split(":")]
        except ValueError:
            raise ValueError(
                f"temperature must be a number or START:END in K, got {text!r}"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) not in (1, 2) or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"temperature must be > 0 K (or START:END, both > 0), got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def load_structure(
    path: str | os.PathLike | Atoms | None, model_name: str, supercell=None
) -> Atoms:
    """A structure file (any format ASE reads), an ``Atoms`` (copied), or the shipped
    model's built-in system."""
    from trajcast_engine.models import default_system

    if isinstance(path, Atoms):
        atoms = path.copy()
    elif path is None:
        atoms = default_system(model_name)
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"structure file not found: {path}")
        from ase.io import read

        try:
            atoms = read(path)
        except Exception as err:  # ASE raises many types for unreadable files
            raise ValueError(f"could not read the structure {path}: {err}") from None
    if supercell is not None:
        supercell = tuple(int(n) for n in supercell)
        if len(supercell) != 3 or any(n < 1 for n in supercell):
            raise ValueError(f"supercell needs three positive integers, got {supercell}")
        atoms = atoms.repeat(supercell)
    return atoms


EQUILIBRATION_PS = 2.0  # default unwritten warm-up of a fresh thermostatted run
EQUILIBRATION_TAU_FS = 100.0  # its CSVR time
EQUILIBRATION_SEED_OFFSET = 104729  # its thermostat's seed: the run's seed plus this


def simulate(
    model: str | os.PathLike = DEFAULT_MODEL,
    structure: str | os.PathLike | None = None,
    *,
    supercell: Sequence[int] | None = None,
    temperature: float | str | tuple[float, float] | None = None,
    thermostat: str | None = None,
    tau: float | None = None,
    steps: int | None = None,
    time_ps: float | None = None,
    write_every: int = 1,
    device: str = "cpu",
    dtype: str | None = None,
    seed: int = 0,
    output: str | os.PathLike = "trajectory.h5",
    overwrite: bool = False,
    resume: bool = False,
    energy_rescale: str | os.PathLike | None = None,
    engine: str = "forecaster",
    potential: str | os.PathLike | None = None,
    replicas: int = 1,
    progress: bool = True,
    tensor_product: str | None = None,
    compile: bool = False,
    edge_chunk: int | str | None = "auto",
    equilibrate_ps: float | None = None,
) -> SimulationReport:
    """Run a forecaster simulation (see the module docstring); returns a report.

    ``engine="mlip"`` runs classic MD instead, with the companion ``potential`` (default:
    the one named in the forecaster's metadata, else ``cu-emt-potential``) at the
    forecaster's reference MD step, for comparison; ``steps`` then counts MD steps.
    ``energy_rescale``: a potential that makes each learned step conserve energy; None
    takes the model card's recommendation, ``"none"`` turns it off.
    ``replicas > 1`` advances that many copies of the structure in one batched forward
    pass (each with its own velocities and seed ``seed + k``; ``temperature`` may list one
    value per replica, comma-separated), writing ``{output stem}_r{k}.h5``.
    ``temperature`` None takes the model card's (``metadata['temperature_K']``), else 300 K;
    ``thermostat`` None the model card's (``metadata['thermostat']``), else CSVR.
    ``equilibrate_ps``: a fresh thermostatted forecaster run (single or replicas, not
    ``--engine mlip``) first equilibrates this long under a fast CSVR (τ = 100 fs),
    unwritten (None: 2 ps; 0 turns it off). Maxwell-Boltzmann velocities on a relaxed
    structure put half their energy into the potential, and a slow thermostat (Langevin
    with τ = 1 ps) would take several ps to restore it. Ctrl-C during the warm-up raises
    ``KeyboardInterrupt`` (nothing is written); during the run it ends the run after the
    current step, with the file complete and resumable.
    ``tensor_product`` / ``compile`` / ``edge_chunk`` choose how the forecaster runs (the report's
    ``execution`` and the file's provenance say what ran)."""
    if equilibrate_ps is not None and float(equilibrate_ps) < 0:
        raise ValueError(f"equilibrate must be >= 0 ps, got {equilibrate_ps}")
    if int(replicas) > 1:
        return _simulate_replicas(
            model, structure, supercell, temperature, thermostat, tau, steps, time_ps,
            write_every, device, dtype, seed, Path(output), overwrite, resume, engine,
            int(replicas), progress, energy_rescale, tensor_product, compile, edge_chunk,
            equilibrate_ps,
        )  # fmt: skip
    if int(replicas) < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    from integrators import ForecastCSVR, ForecastLangevin, ForecastLogger, ForecastNVE
    from integrators.rollout import load_forecaster
    from trajcast_engine.nn.execution import execution_summary
    from trajcast_engine.trajectory import TrajectoryReader, TrajectoryWriter

    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {output.parent}")
    if output.exists() and not (overwrite or resume):
        raise FileExistsError(
            f"{output} exists: pass --overwrite to replace it or --resume to continue it"
        )
    if resume and not output.exists():
        raise FileNotFoundError(f"cannot resume: {output} does not exist")
    if int(write_every) < 1:
        raise ValueError(f"write-every must be >= 1, got {write_every}")
    if engine not in ("forecaster", "mlip"):
        raise ValueError(f"engine must be forecaster or mlip, got {engine!r}")
    forecaster = load_forecaster(model, device, dtype, tensor_product, compile, edge_chunk)
    execution = execution_summary(forecaster)
    if thermostat is None:
        thermostat = default_thermostat(forecaster)
    if thermostat not in ("none", "csvr", "langevin"):
        raise ValueError(f"thermostat must be none, csvr or langevin, got {thermostat!r}")
    if temperature is None:
        temperature = default_temperature(forecaster)
    target = parse_temperature(temperature)
    dt_fs = forecaster.timestep if engine == "forecaster" else forecaster.config.md_timestep
    steps = _count_steps(steps, time_ps, dt_fs)
    atoms = load_structure(structure, system_name(model, forecaster), supercell)
    rng_states = None
    if resume:
        from trajcast_engine.trajectory.repair import prepare_for_append

        prepare_for_append(output)  # back to the last complete flush, after any crash
        with TrajectoryReader(output) as reader:
            last = reader[-1]
            rng_states = reader.rng_state
        if len(last) != len(atoms) or not np.array_equal(last.numbers, atoms.numbers):
            raise ValueError(
                f"cannot resume {output}: it holds {len(last)} atoms "
                f"({last.get_chemical_formula()}), the structure has {len(atoms)} "
                f"({atoms.get_chemical_formula()})"
            )
        atoms = last
        atoms.calc = None
    else:
        start_t = target if isinstance(target, float) else target[0]
        start_velocities(atoms, start_t, seed, forecaster)

    if engine == "forecaster":  # only here is it used (an OpenMM companion costs a set-up)
        energy_rescale = _rescaling(forecaster, energy_rescale, model, structure)
    warm_steps = 0  # the unwritten warm-up's steps
    if engine == "forecaster" and thermostat != "none" and not resume:
        warm_steps = _warm_up_steps(equilibrate_ps, dt_fs)
    if warm_steps:
        warm = ForecastCSVR(atoms, forecaster, target if isinstance(target, float) else target[0],
                            tau=EQUILIBRATION_TAU_FS, seed=seed + EQUILIBRATION_SEED_OFFSET,
                            device=device, energy_rescale=energy_rescale)  # fmt: skip
        _warm_up(lambda: warm.run(1), warm.get_temperature, warm_steps, dt_fs, progress)
    equilibration_ps = warm_steps * dt_fs / 1000.0
    if engine == "mlip":
        companion = potential or forecaster.metadata.get("companion", "cu-emt-potential")
        dyn = _classic_dynamics(atoms, companion, dt_fs, thermostat, target, tau, seed, device)
    elif thermostat == "none":
        dyn = ForecastNVE(atoms, forecaster, seed=seed, device=device,
                          energy_rescale=energy_rescale)  # fmt: skip
    else:
        cls = ForecastCSVR if thermostat == "csvr" else ForecastLangevin
        tau = _default_tau(forecaster, tau)
        dyn = cls(atoms, forecaster, target, tau=tau, seed=seed, device=device,
                  energy_rescale=energy_rescale)  # fmt: skip
        if dyn.rollout.thermostat.schedule.open_ramp:  # a ramp spans the whole run
            dyn.rollout.thermostat.schedule.close_ramp(0.0, steps * dt_fs)
        tau = dyn.rollout.thermostat.tau_fs  # what runs (unset: the thermostat's default)
    if rng_states and engine == "forecaster":
        import json

        dyn.rollout.set_rng_state(json.loads(rng_states))

    provenance = _provenance(
        forecaster, model, dt_fs, thermostat, tau, engine, execution, equilibration_ps,
        energy_rescale if engine == "forecaster" else None,
        temperature=temperature if isinstance(temperature, str) else target, seed=seed,
    )  # fmt: skip
    writer = TrajectoryWriter(
        output,
        atoms,
        mode="a" if resume else "w",
        overwrite=overwrite,
        dynamics=dyn,
        provenance=provenance,
    )
    log_path = output.with_suffix(".log")
    resume_from = (writer.time_offset_fs, writer.step_offset) if resume else None
    if engine == "mlip":
        from ase.md import MDLogger

        logger = (
            MDLogger(dyn, atoms, str(log_path), mode="w")
            if resume_from is None
            else _ContinuedMDLog(dyn, atoms, log_path, resume_from[0])
        )
    else:
        logger = ForecastLogger(dyn, str(log_path), mode="a" if resume else "w",
                                resume_from=resume_from)  # fmt: skip

        def remember_rng() -> None:
            writer.set_rng_state(dyn.rollout.rng_state())

        dyn.attach(remember_rng, interval=int(write_every))
    dyn.attach(writer, interval=int(write_every))
    dyn.attach(logger, interval=int(write_every))

    steps_run = dyn.irun(steps)

    def temperature() -> float:
        return float(atoms.get_temperature() if engine == "mlip" else dyn.get_temperature())

    try:
        next(steps_run)  # irun yields once before the first step (writing frame 0)
        done, wall, interrupted, mean_t = _drive(
            lambda: next(steps_run), temperature, steps, dt_fs, progress, "simulate"
        )
    finally:
        writer.close()
        logger.close()
    last_written = writer.step_offset if writer.last_step is None else writer.last_step
    return SimulationReport(
        output=output,
        log=log_path,
        steps=done,
        simulated_ps=done * dt_fs / 1000.0,
        wall_seconds=wall,
        interrupted=interrupted,
        mean_temperature=mean_t,
        execution=execution if engine == "forecaster" else "",
        equilibration_ps=equilibration_ps,
        steps_left=steps - (last_written - writer.step_offset),
    )


class _ContinuedMDLog:
    """ASE's MDLogger for the classic engine appending to a resumed run's log: no second
    header, times continuing the file's, and the run's first row (the state the log
    already ends with) skipped. It stands as the logger's clock (``get_time``)."""

    def __init__(self, dyn: Any, atoms: Atoms, log_path: Path, offset_fs: float) -> None:
        from ase.md import MDLogger

        self.dyn = dyn
        self.offset = offset_fs * units.fs
        self.logger = MDLogger(self, atoms, str(log_path), header=not log_path.exists())

    def get_time(self) -> float:
        return self.offset + self.dyn.get_time()

    def __call__(self) -> None:
        if self.dyn.nsteps:
            self.logger()

    def close(self) -> None:
        self.logger.close()


def _warm_up_steps(equilibrate_ps: float | None, dt_fs: float) -> int:
    """Forecaster steps of the unwritten warm-up (``simulate``'s ``equilibrate_ps``)."""
    warm_ps = EQUILIBRATION_PS if equilibrate_ps is None else float(equilibrate_ps)
    return int(round(warm_ps * 1000.0 / dt_fs))


def _warm_up(advance: Callable[[], Any], temperature: Callable[[], float], steps: int,
             dt_fs: float, progress: bool) -> None:  # fmt: skip
    """Run the unwritten warm-up (:func:`_drive`); Ctrl-C during it ends the command, not
    just the warm-up."""
    _, _, stopped, _ = _drive(advance, temperature, steps, dt_fs, progress, "equilibrate")
    if stopped:
        raise KeyboardInterrupt("interrupted during the equilibration: nothing was written")


def _drive(
    advance: Callable[[], Any],
    temperature: Callable[[], float],
    steps: int,
    dt_fs: float,
    progress: bool,
    desc: str,
) -> tuple[int, float, bool, float]:
    """Call ``advance`` ``steps`` times with a progress bar (simulated time, ns/day, T);
    SIGINT stops after the current step. Returns ``(steps done, wall seconds,
    interrupted, mean temperature)``."""
    stop = {"requested": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))
    bar = None
    if progress:
        bar = progress_bar(steps, desc)
    temperatures = []
    start = time.monotonic()
    done = 0
    try:
        while done < steps and not stop["requested"]:
            advance()
            done += 1
            temperatures.append(temperature())
            if bar is not None:
                rate = done * dt_fs * 1e-6 / max(time.monotonic() - start, 1e-9) * 86400.0
                bar.update(1)
                t_ps, t_k = done * dt_fs / 1000, temperatures[-1]
                bar.set_postfix_str(
                    f"t={t_ps:.2f} ps  {rate:.1f} ns/day  T={t_k:.0f} K", refresh=False
                )
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    mean_t = float(np.mean(temperatures)) if temperatures else float("nan")
    return done, time.monotonic() - start, stop["requested"] and done < steps, mean_t


def _classic_dynamics(atoms, potential, dt_fs, thermostat, target, tau, seed, device):
    """ASE MD with the potential's calculator at ``dt_fs``: velocity Verlet, Bussi (CSVR)
    or Langevin (with ``FixCom``, the combination that samples NVT in ASE 3.29)."""
    from ase.md.verlet import VelocityVerlet

    from trajcast_engine.calculator import TrajcastCalculator
    from trajcast_engine.models import SHIPPED, shipped_model_path

    if str(potential) in SHIPPED:
        potential = shipped_model_path(str(potential))
    atoms.calc = TrajcastCalculator(potential, device=device)
    if isinstance(target, tuple):
        raise ValueError("temperature ramps are for the forecaster engine only")
    tau_fs = 100.0 * dt_fs if tau is None else float(tau)
    rng = np.random.default_rng(seed)
    if thermostat == "none":
        return VelocityVerlet(atoms, dt_fs * units.fs)
    if thermostat == "csvr":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt_fs * units.fs, target, tau_fs * units.fs, rng=rng)
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    atoms.set_constraint(FixCom())
    return Langevin(atoms, dt_fs * units.fs, temperature_K=target,
                    friction=1.0 / (tau_fs * units.fs), fixcm=False, rng=rng)  # fmt: skip


def _count_steps(steps: int | None, time_ps: float | None, dt_fs: float) -> int:
    if steps is None:
        time_ps = 10.0 if time_ps is None else float(time_ps)
        if not time_ps > 0:
            raise ValueError(f"time must be > 0 ps, got {time_ps}")
        steps = max(1, int(round(time_ps * 1000.0 / dt_fs)))
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return int(steps)


def _simulate_replicas(model, structure, supercell, temperature, thermostat, tau, steps,
                       time_ps, write_every, device, dtype, seed, output, overwrite, resume,
                       engine, replicas, progress, energy_rescale, tensor_product,
                       compile, edge_chunk, equilibrate_ps=None) -> SimulationReport:  # fmt: skip
    """Batched replicas through :class:`integrators.ForecastRollout` (see ``simulate``)."""
    from integrators import CSVR, EnergyRescaler, ForecastRollout, Langevin
    from integrators.rollout import load_forecaster
    from trajcast_engine.graph import from_atoms
    from trajcast_engine.nn.execution import execution_summary
    from trajcast_engine.trajectory import TrajectoryWriter

    if resume or engine != "forecaster":
        raise ValueError("replicas run with the forecaster engine and cannot be resumed")
    forecaster = load_forecaster(model, device, dtype, tensor_product, compile, edge_chunk)
    execution = execution_summary(forecaster)
    if temperature is None:
        temperature = default_temperature(forecaster)
    text = str(temperature)
    targets = [parse_temperature(t) for t in text.split(",")] if "," in text else None
    if targets is not None and len(targets) != replicas:
        raise ValueError(f"{len(targets)} temperatures given for {replicas} replicas")
    if targets is None:
        targets = [parse_temperature(temperature)] * replicas
    if any(isinstance(t, tuple) for t in targets):
        raise ValueError("temperature ramps are not available with replicas")
    paths = [output.with_name(f"{output.stem}_r{k}{output.suffix}") for k in range(replicas)]
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {output.parent}")
    for path in paths:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists: pass --overwrite to replace it")
    dt_fs = forecaster.timestep
    steps = _count_steps(steps, time_ps, dt_fs)
    base = load_structure(structure, system_name(model, forecaster), supercell)
    images = []
    for k in range(replicas):
        atoms = base.copy()
        start_velocities(atoms, targets[k], seed + k, forecaster)
        images.append(atoms)
    tau_fs = _default_tau(forecaster, tau)
    if thermostat is None:
        thermostat = default_thermostat(forecaster)
    bath = {"csvr": CSVR, "langevin": Langevin}.get(thermostat)
    if bath is None and thermostat != "none":
        raise ValueError(f"thermostat must be none, csvr or langevin, got {thermostat!r}")
    companion = _rescaling(forecaster, energy_rescale, model, structure)
    graph = from_atoms(images)
    warm_steps = _warm_up_steps(equilibrate_ps, dt_fs) if bath else 0
    if warm_steps:  # as a single run's warm-up: a fast CSVR, unwritten
        warm = ForecastRollout(
            forecaster, graph, thermostat=CSVR(targets, EQUILIBRATION_TAU_FS),
            seed=[seed + EQUILIBRATION_SEED_OFFSET + k for k in range(replicas)],
            rescaler=EnergyRescaler(companion) if companion else None,
        )  # fmt: skip
        _warm_up(warm.step, lambda: float(np.mean(warm.temperatures())), warm_steps, dt_fs,
                 progress)  # fmt: skip
        graph = warm.graph
    equilibration_ps = warm_steps * dt_fs / 1000.0
    rollout = ForecastRollout(
        forecaster, graph, thermostat=bath(targets, tau_fs) if bath else None,
        seed=[seed + k for k in range(replicas)],
        rescaler=EnergyRescaler(companion) if companion else None,
    )  # fmt: skip
    tau_fs = rollout.thermostat.tau_fs if bath else None
    writers = [
        TrajectoryWriter(p, a, overwrite=overwrite, provenance=_provenance(
            forecaster, model, dt_fs, thermostat, tau_fs, engine, execution, equilibration_ps,
            companion,
            replica=k, temperature=targets[k], seed=seed + k))
        for k, (p, a) in enumerate(zip(paths, images, strict=True))
    ]  # fmt: skip
    log_path = output.with_suffix(".log")
    n = len(base)

    def write_all() -> None:
        positions = rollout.graph.positions.detach().cpu().double().numpy()
        velocities = rollout.graph.velocities.detach().cpu().double().numpy()
        temps, kinetic = rollout.temperatures(), rollout.kinetic_energy()
        for k, writer in enumerate(writers):
            rows = slice(k * n, (k + 1) * n)
            writer.write(positions[rows], velocities=velocities[rows], time_fs=rollout.time_fs,
                         step=rollout.step_count, cell=images[k].cell.array,
                         temperature=float(temps[k]), kinetic_energy=float(kinetic[k]))  # fmt: skip
        log.write(f"{rollout.time_fs / 1000:12.4f} {rollout.step_count:8d} "
                  + " ".join(f"{t:10.2f}" for t in temps) + "\n")  # fmt: skip

    def advance() -> None:
        rollout.step()
        if rollout.step_count % int(write_every) == 0:
            write_all()

    with open(log_path, "w") as log:
        log.write("# time[ps] step " + " ".join(f"T_r{k}[K]" for k in range(replicas)) + "\n")
        try:
            write_all()
            done, wall, interrupted, mean_t = _drive(
                advance, lambda: float(np.mean(rollout.temperatures())), steps, dt_fs,
                progress, f"{replicas} replicas",
            )  # fmt: skip
        finally:
            for writer in writers:
                writer.close()
    return SimulationReport(
        output=paths[0], log=log_path, steps=done, simulated_ps=done * dt_fs / 1000.0,
        wall_seconds=wall, interrupted=interrupted, mean_temperature=mean_t, execution=execution,
        equilibration_ps=equilibration_ps,
    )  # fmt: skip


def _card(model: Any) -> dict[str, Any]:
    """A model's metadata (its card's machine-readable part): from the model object, a
    shipped name or a file; empty where the file is missing (loading reports that)."""
    if not isinstance(model, str | os.PathLike):  # a model object
        return getattr(model, "metadata", {})
    from trajcast_engine.models import SHIPPED, shipped_model_path
    from trajcast_engine.nn.model_io import read_model_file

    path = shipped_model_path(str(model)) if str(model) in SHIPPED else Path(model)
    if not path.is_file():
        return {}
    return read_model_file(path).get("metadata", {})


def start_velocities(atoms: Atoms, temperature: float, seed: int, forecaster: Any) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` K (seeded), the centre of mass at
    rest, and for an isolated structure (no periodic direction) whose angular momentum the
    forecaster keeps, no rigid rotation either.

    Neither the forecaster's conservation layer nor the thermostats (which act on the
    thermal part of the velocities only, :mod:`integrators.kinetics`) ever change that
    rotation, so whatever the random draw gave it (for alanine dipeptide at 300 K, 2.7%
    of the kinetic energy in one draw) would stay frozen for the whole run: not a
    canonical sample, and a spectrum with a tumbling molecule's low-frequency weight that
    the reference MD, which zeroes it too (``reference_md._csvr``), does not have. Zero
    angular momentum is also what MD codes do for a molecule in vacuum (GROMACS'
    ``comm-mode = angular``).

    The removed motion is not made up for (ASE's ``preserve_temperature=False``): a
    Maxwell-Boltzmann draw projected onto the remaining ``3N - 3`` (or ``3N - 6``)
    degrees of freedom already has their canonical kinetic energy, ``(3N - 3) k_B T / 2``
    on average. Rescaling it to the draw's ``3N``-counted temperature instead would start
    a 22-atom molecule about 10% hot (66 / 60), which a run without a thermostat keeps."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    from trajcast_engine.data.reference_md import thermalize

    thermalize(atoms, temperature, np.random.default_rng(seed))
    Stationary(atoms, preserve_temperature=False)
    keeps = bool(forecaster.config.conserve_angular_momentum)
    if keeps and not atoms.pbc.any() and len(atoms) > 2:
        ZeroRotation(atoms, preserve_temperature=False)


def system_name(model: Any, forecaster: Any) -> str:
    """The shipped model whose built-in structure a run takes without ``--structure``:
    ``model`` itself when it names one, else the name in the model file's metadata (a
    shipped model retrained by its example script or fine-tuned from its weights)."""
    from trajcast_engine.models import SYSTEMS

    name = str(model) if isinstance(model, str) else ""
    if name in SYSTEMS:
        return name
    recorded = str(getattr(forecaster, "metadata", {}).get("name", ""))
    return recorded if recorded in SYSTEMS else name


def default_temperature(model: Any) -> float:
    """The temperature (K) a model's card recommends (its ``metadata['temperature_K']``;
    e.g. a liquid's), else 300 K."""
    return float(_card(model).get("temperature_K", 300.0))


def default_thermostat(model: Any) -> str:
    """The model card's thermostat (``metadata['thermostat']``: ``"csvr"`` or
    ``"langevin"``), else ``"csvr"``."""
    return str(_card(model).get("thermostat", "csvr"))


def _rescaling(forecaster, energy_rescale, model, structure):
    """The companion potential for energy rescaling: as asked (``"none"`` turns it off),
    else the model card's recommendation (``metadata['energy_rescale']``), else none.
    ``"openmm"`` is OpenMM's amber14 on the PDB ``structure`` (or the model's built-in
    PDB), through :class:`~trajcast_engine.data.openmm_calculator.OpenMMCalculator`;
    ``"emt"`` / ``"asap-emt"`` (ASE's or asap3's EMT, a reference force field itself) and
    ``"module:Class"`` (any ASE calculator, built without arguments) are ASE calculators;
    anything else is a shipped potential's name or a model file."""
    if energy_rescale is None:
        energy_rescale = getattr(forecaster, "metadata", {}).get("energy_rescale")
    if energy_rescale is None or str(energy_rescale).lower() == "none":
        return None
    from integrators.energy_rescale import named_calculator

    calculator = named_calculator(energy_rescale)
    if calculator is not None:
        return calculator
    if str(energy_rescale).lower() == "openmm":
        from trajcast_engine.data.openmm_calculator import OpenMMCalculator
        from trajcast_engine.models import system_file

        pdb = structure if structure is not None else system_file(system_name(model, forecaster))
        if not str(pdb).lower().endswith(".pdb"):
            raise ValueError(f"energy rescaling with openmm needs a PDB structure, got {pdb}")
        return OpenMMCalculator(pdb)
    return energy_rescale


def _provenance(forecaster, model, dt_fs, thermostat, tau_fs, engine, execution,
                equilibration_ps, companion, **run: Any) -> dict[str, Any]:  # fmt: skip
    """What a trajectory file records about the run that wrote it (``run``: the seed,
    temperature and, for replicas, the replica's index)."""
    if companion is None:
        rescaling = "none"
    elif isinstance(companion, (str, os.PathLike)):
        rescaling = str(companion)
    else:  # a loaded potential (its file) or an ASE calculator (its class)
        kind = type(companion)
        rescaling = getattr(companion, "source", None) or f"{kind.__module__}.{kind.__name__}"
    return {
        "model": getattr(forecaster, "source", str(model)),
        "timestep_fs": dt_fs,
        "thermostat": thermostat,
        "thermostat_tau_fs": tau_fs,
        "engine": engine,
        "execution": execution,
        "equilibration_ps": equilibration_ps,
        "energy_rescale": rescaling,
        **run,
    }


def _default_tau(forecaster, tau: float | None) -> float | None:
    """The thermostat time (fs): as asked, else the model card's recommendation
    (``metadata['thermostat_tau_fs']``), else None (the thermostat's own default)."""
    if tau is not None:
        return float(tau)
    recommended = getattr(forecaster, "metadata", {}).get("thermostat_tau_fs")
    return float(recommended) if recommended else None
