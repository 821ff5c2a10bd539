"""Reference data: labelling structures with a reference calculator, reference-MD
generation, and the forecaster's training pairs (from trajectories, or from a rollout's
states with exact reference strides)."""

from trajcast_engine.data.labels import labelled_copy
from trajcast_engine.data.pairs import TrainingPair, build_pairs, split_by_trajectory
from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md
from trajcast_engine.data.relabel import pairs_from_states

__all__ = [
    "ReferenceSettings",
    "TrainingPair",
    "build_pairs",
    "labelled_copy",
    "pairs_from_states",
    "run_reference_md",
    "split_by_trajectory",
]
