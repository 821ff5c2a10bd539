"""The ``trajcast`` command line.

Sub-commands:

- ``trajcast simulate``: large-timestep MD with a forecaster (default: the shipped fcc-Cu
  model on its built-in 256-atom crystal at 300 K under its model card's thermostat),
  written to an mdtraj HDF5 file with a log.
- ``trajcast generate``: reference MD with an ASE calculator into training files.
- ``trajcast train``, ``analyze``, ``repair``, ``models``, ``info``: see each ``--help``.
- ``trajcast neighbors [STRUCTURE]``: build the neighbour list of a structure (any file
  ASE reads, or a built-in fcc Cu crystal) and report pair counts, neighbour statistics
  and build time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from trajcast_engine import __version__


def _load_structure(path: str | None, supercell: Sequence[int]):
    from ase.build import bulk
    from ase.io import read

    if path is None:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        label = "built-in fcc Cu (a = 3.61 Å)"
    else:
        try:
            atoms = read(path)
        except FileNotFoundError:
            raise SystemExit(f"trajcast: error: structure file not found: {path}") from None
        except Exception as err:  # ASE raises many types for unreadable files
            raise SystemExit(f"trajcast: error: could not read {path}: {err}") from None
        label = path
    if any(n < 1 for n in supercell):
        raise SystemExit(f"trajcast: error: --supercell needs positive integers, got {supercell}")
    return atoms.repeat(tuple(supercell)), label


def _neighbors(args: argparse.Namespace) -> int:
    from trajcast_engine.neighbors import neighbor_list_atoms, pair_distances
    from trajcast_engine.neighbors.neighbor_list import atoms_batch_arrays

    atoms, label = _load_structure(args.structure, args.supercell)
    try:
        neighbor_list_atoms(atoms, args.cutoff)  # first call compiles (cached on disk)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            pairs = neighbor_list_atoms(atoms, args.cutoff)
            times.append(time.perf_counter() - start)
    except ValueError as err:
        raise SystemExit(f"trajcast: error: {err}") from None
    per_atom = np.bincount(pairs.i, minlength=len(atoms))
    positions, cells, _, ptr = atoms_batch_arrays(atoms)
    dist = pair_distances(positions, cells, ptr, pairs.i, pairs.j, pairs.shift)
    print(f"structure      {label}: {len(atoms)} atoms, {atoms.get_chemical_formula()}")
    print(f"pbc            {atoms.pbc.tolist()}")
    print(f"cutoff         {args.cutoff:g} Å")
    print(f"pairs          {len(pairs)} (both directions)")
    print(f"neighbours     mean {per_atom.mean():.2f}, min {per_atom.min()}, max {per_atom.max()}")
    if len(dist):
        print(f"shortest pair  {dist.min():.4f} Å")
    print(f"build time     {1e3 * min(times):.2f} ms (best of {args.repeat})")
    return 0


def _fail(message: str) -> SystemExit:
    return SystemExit(f"trajcast: error: {message}")


def _apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill options not given on the command line from ``args.config`` (YAML, keys as the
    long options with ``-`` or ``_``); the command line wins."""
    from pathlib import Path

    import yaml

    path = Path(args.config)
    if not path.is_file():
        raise _fail(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise _fail(f"{path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise _fail(f"{path} must hold a mapping of simulate options")
    defaults = {a.dest: a.default for a in parser._actions if a.dest not in ("help", "config")}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in defaults:
            raise _fail(f"unknown option '{key}' in {path}; options: {', '.join(sorted(defaults))}")
        if getattr(args, dest) == defaults[dest]:  # not given on the command line
            setattr(args, dest, value)


def _simulate(args: argparse.Namespace) -> int:
    from trajcast_engine.simulate import simulate

    if args.config is not None:
        _apply_config(args, args.subparser)
    try:
        report = simulate(
            model=args.model,
            structure=args.structure,
            supercell=args.supercell,
            temperature=args.temperature,
            thermostat=args.thermostat,
            tau=args.tau,
            steps=args.steps,
            time_ps=args.time,
            write_every=args.write_every,
            device=args.device,
            dtype=args.dtype,
            seed=args.seed,
            output=args.output,
            overwrite=args.overwrite,
            resume=args.resume,
            energy_rescale=args.energy_rescale,
            engine=args.engine,
            potential=args.potential,
            replicas=args.replicas,
            progress=not args.quiet,
            tensor_product=args.tensor_product,
            compile=args.compile,
            edge_chunk="auto" if args.edge_chunk is None else args.edge_chunk,
            equilibrate_ps=args.equilibrate,
        )
    except ImportError as err:  # an optional backend that is not installed
        raise _fail(str(err)) from None
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise _fail(str(err)) from None
    except RuntimeError as err:  # the stability guard, a CUDA failure
        raise _fail(f"{err} (frames written so far are in {args.output})") from None
    except KeyboardInterrupt as err:  # before the first written step: nothing to resume
        print(f"trajcast: {err or 'interrupted before the run started'}", file=sys.stderr)
        return 130
    print(
        f"{report.steps} steps, {report.simulated_ps:.2f} ps in {report.wall_seconds:.1f} s "
        f"({report.ns_per_day:.1f} ns/day), mean T {report.mean_temperature:.1f} K"
    )
    if report.equilibration_ps:
        print(f"equilibrated {report.equilibration_ps:g} ps first under a fast CSVR (not written)")
    if report.execution:
        print(f"ran with    {report.execution}")
    print(f"trajectory  {report.output}  (mdtraj.load('{report.output}'))")
    print(f"log         {report.log}")
    print(f"analyse     trajcast analyze {report.output}  (RDF, VDOS, MSD, T and energy plots)")
    if report.interrupted:
        print(
            f"interrupted: resume with  trajcast simulate --resume --output {report.output} "
            f"--steps {report.steps_left} (the steps still to run from the last frame "
            "written, in place of --steps or --time; the other options as before)"
        )
    return 130 if report.interrupted else 0


def _generate(args: argparse.Namespace) -> int:
    from trajcast_engine.generate import generate

    if args.config is not None:
        _apply_config(args, args.subparser)
    settings = {
        "md_timestep": args.timestep,
        "equilibration_steps": args.equilibration_steps,
        "segments": args.segments,
        "segment_steps": args.segment_steps,
        "decorrelation_steps": args.decorrelation_steps,
        "write_every": args.write_every,
        "friction": args.friction,
        "production": args.production,
        "tau": args.tau,
        "seed": args.seed,
    }
    if args.melt is not None:
        try:
            melt_t, _, melt_steps = str(args.melt).partition(":")
            settings.update(melt_temperature=float(melt_t), melt_steps=int(melt_steps or 0))
        except ValueError:
            raise _fail(f"--melt is TEMPERATURE:STEPS, e.g. 300:2000, got {args.melt!r}") from None
    start = time.monotonic()
    try:
        paths = generate(
            args.structure,
            calculator=args.calculator,
            parameters=args.param,
            temperature=args.temperature,
            supercell=args.supercell,
            system=args.system,
            output=args.output,
            overwrite=args.overwrite or args.resume,
            reuse_existing=args.resume,
            progress=not args.quiet,
            **settings,
        )
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        raise _fail(str(err)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted: segments finished so far are complete files; run the "
                    "same command with --resume to complete the data set") from None  # fmt: skip
    print(f"{len(paths)} segment files in {time.monotonic() - start:.0f} s:")
    for path in paths:
        print(f"  {path}")
    print("train on them with  trajcast train config.yaml  (trajcast train --print-config)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from trajcast_engine.train.config import default_config, load_config

    if args.print_config:
        print(default_config(args.model_type), end="")
        return 0
    if args.config is None:
        raise _fail("give a config file (trajcast train config.yaml) or --print-config")
    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(str(err)) from None
    output = config["output"]
    if args.resume and args.overwrite:
        raise _fail("--resume continues the existing output; --overwrite starts afresh: pick one")
    from trajcast_engine.train.loop import RunFiles

    files = RunFiles.of(output)
    if args.resume and not files.state.is_file():
        raise _fail(
            f"nothing to resume: {files.state} does not exist (it is written after each epoch)"
        )
    if output.exists() and not (args.overwrite or args.resume):
        raise _fail(f"{output} exists: pass --overwrite to replace it or --resume to continue")

    def log(row: dict) -> None:
        shown = {k: v for k, v in row.items() if k in ("epoch", "train_loss", "val_loss", "lr")}
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in shown.items()), flush=True)  # fmt: skip

    try:
        if config["model_type"] == "forecaster":
            from trajcast_engine.train.fit_forecaster import fit_forecaster

            result = fit_forecaster(
                config["sources"], config["model"], config["training"], output, log,
                resume=args.resume, progress=not args.quiet, **config["data_options"],
            )  # fmt: skip
        else:
            from trajcast_engine.train.fit_potential import fit_potential

            result = fit_potential(
                config["sources"], config["model"], config["training"], output, log,
                resume=args.resume, progress=not args.quiet,
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        raise _fail(str(err)) from None
    from trajcast_engine.train.history import plot_history

    curve = plot_history(result.history, files.curve)
    print(f"validation: {result.validation}")
    print(f"model written to {output} (and the last epoch to {files.last})")
    print(f"log {files.log}, learning curve {curve}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trajcast_engine import analysis
    from trajcast_engine.analyze import analyze

    for name in (args.trajectory, args.reference):
        if name is not None and not Path(name).is_file():
            raise _fail(f"trajectory not found: {name}")
    try:
        summary = analyze(args.trajectory, args.reference, args.output, args.skip)
    except ValueError as err:
        raise _fail(str(err)) from None
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for plot in summary["plots"]:
        print(f"plot     {plot}")
    print(f"summary  {summary['summary']}")
    if "temperature" in summary:
        t = summary["temperature"]["trajectory"]
        print(f"T        {analysis.format_temperature(t)}")
    for name, per_element in summary.get("element_temperatures", {}).items():
        values = ", ".join(f"{symbol} {t:.1f}" for symbol, t in per_element.items())
        print(f"T (K) by element, {name}: {values}")
    if "drift" in summary:
        print("drift    stretch (ps)        T (K)   1st peak (Å, height)   ∫|Δg| vs 1st "
              "(noise) Å   RMS fluct. (Å)")  # fmt: skip
        for row in summary["drift"]:
            span = f"{row['start_ps']:.1f}-{row['end_ps']:.1f}"
            temperature = "-" if row["temperature"] is None else f"{row['temperature']:.1f}"
            noise = "-" if row["rdf_noise"] is None else f"{row['rdf_noise']:.4f}"
            difference = f"{row['rdf_difference_from_first']:.4f} ({noise})"
            print(f"         {span:<18}  {temperature:>6}   {row['peak_position']:.3f}, "
                  f"{row['peak_height']:<10.3f}   {difference:<23}  "
                  f"{row['rms_fluctuation']:.4f}")  # fmt: skip
    comparison = summary.get("comparison")
    if comparison:
        print(f"RDF ∫|Δg| {comparison['rdf_integrated_abs_difference']:.4f} Å")
        if "vdos_overlap" in comparison:
            print(f"VDOS overlap {comparison['vdos_overlap']:.3f}")
    return 0


def _repair(args: argparse.Namespace) -> int:
    from trajcast_engine.trajectory.repair import interrupted, repair_trajectory

    try:
        mid_flush = os.path.isfile(args.trajectory) and interrupted(args.trajectory)
        kept, dropped = repair_trajectory(args.trajectory, dry_run=args.dry_run)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(str(err)) from None
    name = args.trajectory
    if dropped and args.dry_run:
        print(f"{name}: {dropped} incomplete frames after frame {kept} (not changed)")
    elif dropped:
        print(f"{name}: cut {dropped} incomplete frames; {kept} complete frames kept")
    elif mid_flush:
        state = "(not changed)" if args.dry_run else "rewritten, all kept"
        print(f"{name}: left inside a flush; its {kept} frames are complete; {state}")
    else:
        print(f"{name}: all {kept} frames are complete; nothing to repair")
    return 0


def _models(args: argparse.Namespace) -> int:
    from trajcast_engine.models import SHIPPED, model_card, shipped_model_available

    for name in SHIPPED:
        state = "" if shipped_model_available(name) else "  (file not built)"
        print(f"{name}{state}")
        for line in model_card(name).splitlines():
            print(f"    {line}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from pathlib import Path

    path = Path(args.file)
    if not path.is_file():
        raise _fail(f"file not found: {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):
        from trajcast_engine.trajectory import TrajectoryReader

        try:
            reader = TrajectoryReader(path)
        except ValueError as err:
            raise _fail(str(err)) from None
        with reader:
            times = reader.times_fs()
            first = reader[0]
            print(f"trajectory   {path}")
            print(f"atoms        {len(first)} ({first.get_chemical_formula()})")
            print(f"frames       {len(reader)}")
            if len(times):
                print(f"time         {times[0] / 1000:.4g} .. {times[-1] / 1000:.4g} ps")
            print(f"pbc          {reader.pbc.tolist()}")
            print(f"velocities   {'yes' if first.has('momenta') else 'no'}")
            for key, value in reader.provenance.items():
                print(f"{key:<12} {value}")
        return 0
    from trajcast_engine.nn.model_io import read_model_file

    try:
        payload = read_model_file(path)
    except ValueError as err:
        raise _fail(str(err)) from None
    config, meta = payload["config"], payload["metadata"]
    from ase.data import chemical_symbols

    print(f"model        {path}")
    print(f"kind         {payload['kind']} (engine {payload['engine_version']})")
    print(f"species      {[chemical_symbols[z] for z in config['species']]}")
    keys = ("cutoff", "lmax", "channels", "num_layers", "dtype")
    print("size         " + ", ".join(f"{k} {config[k]}" for k in keys))
    n = sum(v.numel() for v in payload["state_dict"].values() if v.is_floating_point())
    print(f"parameters   {n}")
    if payload["kind"] == "forecaster":
        dt = config["md_timestep"] * config["stride"]
        print(f"stride       {config['stride']} x {config['md_timestep']:g} fs = {dt:g} fs")
    for key in ("system", "reference", "script"):
        if key in meta:
            print(f"{key:<12} {meta[key]}")
    if "validation" in meta:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in meta["validation"].items())
        print(f"validation   {shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trajcast`` command."""
    parser = argparse.ArgumentParser(
        prog="trajcast",
        description="Force-free large-timestep molecular dynamics with equivariant networks.",
    )
    parser.add_argument("--version", action="version", version=f"trajcast-engine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sim = commands.add_parser(
        "simulate",
        help="large-timestep MD with a forecaster, written to an mdtraj HDF5 file",
        description=(
            "Advance a structure with a trained forecaster (no force evaluations), one "
            "model stride per step, under a thermostat. With no options: the shipped "
            "fcc-Cu model on its 256-atom crystal at 300 K (Langevin) for 10 ps."
        ),
    )
    sim.add_argument(
        "--model",
        default="cu-emt-forecaster",
        help="a shipped model name or a model file (default cu-emt-forecaster)",
    )
    sim.add_argument("--structure", help="any file ASE reads (default: the model's system)")
    sim.add_argument(
        "--supercell",
        type=int,
        nargs=3,
        metavar=("NA", "NB", "NC"),
        help="repeat the structure NA x NB x NC times",
    )
    sim.add_argument(
        "--temperature",
        help="target in K, or START:END for a linear ramp (default: the model card's, else 300)",
    )
    sim.add_argument(
        "--thermostat", choices=("none", "csvr", "langevin"),
        help="default: the model card's, else csvr",
    )  # fmt: skip
    sim.add_argument(
        "--tau",
        type=float,
        help="thermostat time in fs (default: the model card's, else 10 strides)",
    )
    length = sim.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="number of forecaster steps")
    length.add_argument("--time", type=float, help="simulated time in ps (default 10)")
    sim.add_argument("--write-every", type=int, default=1, help="write every n steps")
    sim.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    sim.add_argument("--dtype", choices=("float32", "float64"), help="default: the model's")
    sim.add_argument("--seed", type=int, default=0, help="velocities and thermostat noise")
    sim.add_argument(
        "--equilibrate", type=float, metavar="PS",
        help="unwritten warm-up of a fresh thermostatted run under a fast CSVR "
        "(default 2 ps; 0 turns it off)",
    )  # fmt: skip
    sim.add_argument("--output", default="trajectory.h5", help="HDF5 trajectory to write")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing output")
    sim.add_argument("--resume", action="store_true",
                     help="continue an existing output and its log from the last frame "
                     "written; --steps / --time then count what is still to run")  # fmt: skip
    sim.add_argument(
        "--energy-rescale",
        metavar="POTENTIAL",
        help="make each learned step conserve energy with this potential: a shipped "
        "potential's name, a model file, emt or asap-emt (the EMT reference itself), "
        "openmm, or module:Class of an ASE calculator (default: the model card's "
        "recommendation; 'none' turns it off)",
    )
    sim.add_argument(
        "--engine",
        choices=("forecaster", "mlip"),
        default="forecaster",
        help="mlip: classic MD with the companion potential, for comparison",
    )
    sim.add_argument("--potential", help="companion potential for --engine mlip")
    sim.add_argument("--replicas", type=int, default=1,
                     help="batched copies (one forward pass); --temperature may list one "
                          "value per replica, e.g. 300,600,900")  # fmt: skip
    sim.add_argument(
        "--tensor-product",
        metavar="BACKEND",
        help="channelwise (default), e3nn or cuequivariance (needs "
        "cuequivariance-torch, and its ops package for the CUDA kernels)",
    )
    sim.add_argument("--compile", action="store_true",
                     help="torch.compile the interaction layers (checked against eager on "
                          "first use; for CUDA)")  # fmt: skip
    sim.add_argument("--edge-chunk", type=int, metavar="EDGES",
                     help="evaluate messages this many edges at a time: bounds memory for "
                          "large systems (default: 32768 on a CPU, 131072 on a GPU; "
                          "0: all at once)")  # fmt: skip
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--config", help="YAML file of these options (command line wins)")
    sim.set_defaults(handler=_simulate, subparser=sim)

    gen = commands.add_parser(
        "generate",
        help="reference MD with an ASE calculator, written as training data",
        description=(
            "Classic MD with an ASE calculator at a fine step: NVT equilibration (Langevin), "
            "then production segments in NVE (or CSVR), each an mdtraj HDF5 file with "
            "positions, velocities and energies in full precision. With no options: EMT "
            "on the 256-atom fcc Cu crystal at 300 K."
        ),
    )
    gen.add_argument("--structure", help="any file ASE reads (default: 256-atom fcc Cu)")
    gen.add_argument("--system", default="cu-emt-potential", metavar="MODEL",
                     help="else the built-in structure of this shipped model, e.g. "
                          "ar-lj-forecaster (liquid argon)")  # fmt: skip
    gen.add_argument("--supercell", type=int, nargs=3, metavar=("NA", "NB", "NC"),
                     help="repeat the structure NA x NB x NC times")  # fmt: skip
    gen.add_argument(
        "--calculator",
        default="emt",
        help="emt, asap-emt, lj, asap-lj, or module:Class of any ASE calculator (default emt)",
    )
    gen.add_argument("--param", action="append", metavar="KEY=VALUE",
                     help="calculator parameter, repeatable (e.g. --param sigma=3.4)")  # fmt: skip
    gen.add_argument("--temperature", default="300",
                     help="K, or a comma list: one run per temperature (default 300)")  # fmt: skip
    gen.add_argument("--timestep", type=float, default=2.0, help="MD step in fs (default 2)")
    gen.add_argument("--melt", metavar="T:STEPS",
                     help="first melt at T K for STEPS steps (liquids from a crystal)")  # fmt: skip
    gen.add_argument("--equilibration-steps", type=int, default=2000,
                     help="NVT steps before the first segment (default 2000)")  # fmt: skip
    gen.add_argument("--segments", type=int, default=1, help="production segments (default 1)")
    gen.add_argument("--segment-steps", type=int, default=5000,
                     help="steps per segment (default 5000)")  # fmt: skip
    gen.add_argument("--decorrelation-steps", type=int, default=500,
                     help="NVT steps between segments (default 500)")  # fmt: skip
    gen.add_argument("--write-every", type=int, default=1, help="write every n steps")
    gen.add_argument("--friction", type=float, default=0.01,
                     help="NVT Langevin friction in 1/fs (default 0.01)")  # fmt: skip
    gen.add_argument("--production", choices=("nve", "csvr"), default="nve",
                     help="segments in NVE (training data) or CSVR (validation)")  # fmt: skip
    gen.add_argument("--tau", type=float, default=100.0, help="CSVR time in fs (default 100)")
    gen.add_argument("--seed", type=int, default=0, help="velocities and Langevin noise")
    gen.add_argument("--output", default="reference.h5",
                     help="base name: files NAME_seg0.h5, ... (default reference.h5)")  # fmt: skip
    gen.add_argument("--overwrite", action="store_true", help="replace existing files")
    gen.add_argument("--resume", action="store_true",
                     help="complete an interrupted data set: keep each temperature whose "
                          "segments finished with these same options, run the others again "
                          "(replacing their cut files)")  # fmt: skip
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.add_argument("--config", help="YAML file of these options (command line wins)")
    gen.set_defaults(handler=_generate, subparser=gen)

    tr = commands.add_parser(
        "train",
        help="train a forecaster or a potential from a YAML config",
        description="Train from a YAML config; --print-config prints a commented default.",
    )
    tr.add_argument("config", nargs="?", help="YAML config file")
    tr.add_argument("--print-config", action="store_true", help="print a default config")
    tr.add_argument("--model-type", choices=("forecaster", "potential"), default="forecaster",
                    help="which default --print-config prints")  # fmt: skip
    tr.add_argument("--overwrite", action="store_true", help="replace an existing output")
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from its OUTPUT.state (the same result "
                         "as an uninterrupted run)")  # fmt: skip
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(handler=_train)

    an = commands.add_parser(
        "analyze",
        help="RDF, VDOS, MSD and temperature of a trajectory, as PNG plots and JSON",
        description="Analyse an HDF5 trajectory; with --reference, overlay and compare.",
    )
    an.add_argument("trajectory", help="HDF5 trajectory written by trajcast")
    an.add_argument("--reference", help="a reference trajectory to compare with")
    an.add_argument("--output", help="folder for plots and summary (default: next to it)")
    an.add_argument("--skip", type=int, default=0, help="frames to drop at the start")
    an.set_defaults(handler=_analyze)

    rp = commands.add_parser(
        "repair",
        help="tidy a trajectory a crash interrupted (frames of old files it tore, rows it "
        "left uncommitted)",
        description="Keep the complete frames of an HDF5 trajectory and rewrite a file a "
        "kill left in the middle of a flush (resuming does this by itself).",
    )
    rp.add_argument("trajectory", help="HDF5 trajectory written by trajcast")
    rp.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    rp.set_defaults(handler=_repair)

    md = commands.add_parser("models", help="list the shipped models with their model cards")
    md.set_defaults(handler=_models)
    inf = commands.add_parser("info", help="describe a model file or a trajectory file")
    inf.add_argument("file", help="a model file (.pt) or an HDF5 trajectory (.h5)")
    inf.set_defaults(handler=_info)

    nb = commands.add_parser(
        "neighbors",
        help="neighbour-list statistics and build time for a structure",
        description="Build the Numba cell list of a structure and report pairs and timing.",
    )
    nb.add_argument("structure", nargs="?", help="any file ASE reads (default: built-in fcc Cu)")
    nb.add_argument("--cutoff", type=float, default=5.0, help="cutoff in Å (default 5)")
    nb.add_argument(
        "--supercell",
        type=int,
        nargs=3,
        default=(1, 1, 1),
        metavar=("NA", "NB", "NC"),
        help="repeat the structure NA x NB x NC times",
    )
    nb.add_argument("--repeat", type=int, default=5, help="timed builds (default 5)")
    nb.set_defaults(handler=_neighbors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trajcast`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except OSError as err:
        from trajcast_engine.trajectory.writer import TrajectoryInUseError

        if isinstance(err, TrajectoryInUseError):  # one line, not a traceback
            raise _fail(str(err)) from None
        raise


if __name__ == "__main__":
    sys.exit(main())
