"""Model files: saved and loaded with weights_only, checked, and clear errors when bad."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from trajcast_engine.graph import from_atoms
from trajcast_engine.nn.model_io import load_model, read_model_file, save_model
from trajcast_engine.nn.potential import EquivariantPotential, PotentialConfig


@pytest.fixture
def model():
    torch.manual_seed(1)
    return EquivariantPotential(
        PotentialConfig(
            species=[1, 6, 8], cutoff=3.5, channels=4, num_layers=1, avg_num_neighbors=5.0
        )
    )


def test_round_trip_gives_identical_outputs(model, tmp_path):
    path = save_model(model, tmp_path / "m.pt", {"note": "test", "stride_fs": None})
    raw = torch.load(path, weights_only=True)  # plain data: no code runs on load
    assert raw["kind"] == "potential" and raw["config"]["species"] == [1, 6, 8]
    loaded = load_model(path)
    assert loaded.metadata == {"note": "test", "stride_fs": None} and not loaded.training
    graph = from_atoms(molecule("CH3CH2OH")).with_neighbors(3.5)
    a, b = model.eval()(graph), loaded(graph)
    assert torch.equal(a["energy"], b["energy"]) and torch.equal(a["forces"], b["forces"])
    assert loaded.config == model.config


def test_corrupted_and_foreign_files(model, tmp_path):
    good = save_model(model, tmp_path / "m.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable trajcast-engine model file"):
        load_model(truncated)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable"):
        load_model(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="torch file but not a trajcast-engine model"):
        load_model(foreign)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a pickled object: refused, never executed
    with pytest.raises(ValueError, match="not a readable"):
        load_model(pickled)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "absent.pt")


def test_version_and_config_checks(model, tmp_path):
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="upgrade trajcast-engine"):
        load_model(tmp_path / "future.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["channels"] = 8  # weights no longer fit the config
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not match its config"):
        load_model(tmp_path / "mismatch.pt")
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match="'state_dict' entry is missing"):
        read_model_file(tmp_path / "damaged.pt")
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        save_model(model, tmp_path / "no" / "m.pt")
    assert np.isfinite(load_model(path).config.avg_num_neighbors)
