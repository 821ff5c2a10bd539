"""What every model shares: the JSON-able hyperparameters of the equivariant trunk and
the lookup from atomic numbers to the model's species indices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from trajcast_engine.validation import MAX_ATOMIC_NUMBER, check_cutoff

DTYPES = {"float32": torch.float32, "float64": torch.float64}

ConfigT = TypeVar("ConfigT", bound="ModelConfig")


@dataclass
class ModelConfig:
    """Hyperparameters shared by the potential and the forecaster (JSON-able).

    Lengths in Å. ``avg_num_neighbors`` normalises the message sums and is fixed from
    training data.
    """

    species: list[int]  # atomic numbers the model knows
    cutoff: float = 5.0  # Å
    lmax: int = 2
    channels: int = 32
    num_layers: int = 3
    num_basis: int = 8
    radial_hidden: int = 64
    radial_layers: int = 2
    envelope_p: int = 6
    both_parities: bool = False
    dtype: str = "float64"
    avg_num_neighbors: float = 1.0

    def __post_init__(self) -> None:
        self.species = sorted(int(z) for z in self.species)
        if not self.species or len(set(self.species)) != len(self.species):
            raise ValueError(f"species must be distinct atomic numbers, got {self.species}")
        if not all(1 <= z <= MAX_ATOMIC_NUMBER for z in self.species):
            raise ValueError(f"species must be atomic numbers 1..118, got {self.species}")
        self.cutoff = check_cutoff(self.cutoff)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("lmax", "channels", "num_layers", "num_basis", "radial_hidden"):
            if int(getattr(self, name)) < (0 if name == "lmax" else 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be > 0, got {self.avg_num_neighbors}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**values)


class SpeciesIndex(nn.Module):
    """Maps atomic numbers to the model's species indices 0..S-1, refusing elements the
    model was not trained on with a message that names them."""

    def __init__(self, species: list[int]) -> None:
        super().__init__()
        self.species = list(species)
        index = torch.full((MAX_ATOMIC_NUMBER + 1,), -1, dtype=torch.long)
        index[torch.tensor(self.species)] = torch.arange(len(self.species))
        self.register_buffer("table", index, persistent=False)

    def forward(self, atomic_numbers: Tensor) -> Tensor:
        index = self.table[atomic_numbers.clamp(0, MAX_ATOMIC_NUMBER)]
        if bool((index < 0).any()):
            from ase.data import chemical_symbols

            bad = sorted({int(z) for z in atomic_numbers[index < 0]})
            known = [chemical_symbols[z] for z in self.species]
            raise ValueError(
                f"the model was not trained on {[chemical_symbols[z] for z in bad]}: it knows "
                f"{known} only"
            )
        return index
