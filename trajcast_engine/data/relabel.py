"""Training pairs from the states a rollout visits, labelled by exact reference strides.

A forecaster trained on reference MD only ever sees states drawn from the reference's
ensemble. Its rollout drifts into states of its own (for a crystal: phonon bands a few
per cent too hot or cold), where its errors can differ from those on the reference's
states, and a global thermostat cannot undo a bias that keeps the rollout there. Data
aggregation (DAgger; Ross, Gordon and Bagnell, AISTATS 2011) closes that loop: take
states from the model's own rollouts, run the reference dynamics one stride from each,

    (r, v) --velocity Verlet, n steps of δt with the reference forces--> (r + Δr, v'),

and train on those pairs alongside the reference's. ``Δr`` is the minimum-image
displacement, the time-reversed pair ``(r + Δr, -v') -> (-Δr, -v)`` is added as for
reference trajectories (:mod:`trajcast_engine.data.pairs`). Units: Å, fs, Å/fs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.verlet import VelocityVerlet

from trajcast_engine.data.pairs import TrainingPair, pairs_from_frames
from trajcast_engine.data.reference_md import make_calculator


def pairs_from_states(
    states: Iterable[Atoms],
    calculator: str | Calculator,
    md_timestep: float,
    stride: int,
    time_reversal: bool = True,
    trajectory: int = 0,
    dtype: torch.dtype = torch.float64,
) -> list[TrainingPair]:
    """One pair per state (two with ``time_reversal``): ``stride`` velocity-Verlet steps of
    ``md_timestep`` fs with ``calculator`` (a name as :func:`~trajcast_engine.data.
    reference_md.make_calculator` takes, made afresh for each state, or an object) from
    the state's positions and velocities. Every state needs velocities."""
    if int(stride) < 1 or not md_timestep > 0:
        raise ValueError(f"need stride >= 1 and md_timestep > 0, got {stride}, {md_timestep}")
    pairs: list[TrainingPair] = []
    for k, state in enumerate(states):
        if not state.has("momenta"):
            raise ValueError(f"state {k} has no velocities: a stride needs them")
        start = state.copy()
        start.info["time_fs"] = 0.0
        end = state.copy()
        end.calc = make_calculator(calculator)
        VelocityVerlet(end, md_timestep * units.fs).run(int(stride))
        end.info["time_fs"] = md_timestep * int(stride)
        end.calc = None
        pairs += pairs_from_frames([start, end], md_timestep * int(stride), trajectory, 1,
                                   time_reversal, f"state {k}", dtype)  # fmt: skip
    return pairs
