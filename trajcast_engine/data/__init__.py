"""Reference data: labelling structures with a reference calculator, reference-MD
generation, and the forecaster's training pairs."""

from trajcast_engine.data.labels import labelled_copy
from trajcast_engine.data.pairs import TrainingPair, build_pairs, split_by_trajectory
from trajcast_engine.data.reference_md import ReferenceSettings, run_reference_md

__all__ = [
    "ReferenceSettings",
    "TrainingPair",
    "build_pairs",
    "labelled_copy",
    "run_reference_md",
    "split_by_trajectory",
]
