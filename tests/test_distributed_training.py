"""Data-parallel training with 2 processes (torchrun, gloo on CPU) equals one process on
the same global batch."""

from __future__ import annotations

import socket
import subprocess
import sys

import torch
from conftest import copper_reference

SCRIPT = """
import sys, torch
from trajcast_engine.data.pairs import build_pairs, split_by_trajectory
from trajcast_engine.nn.forecaster import ForecasterConfig
from trajcast_engine.train.fit_forecaster import ForecastFitSettings, fit_forecaster
from trajcast_engine.train.loop import distributed_setup

out, epochs, resume, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
config = ForecasterConfig(species=[29], cutoff=4.0, lmax=1, channels=4, num_layers=1,
                          radial_hidden=8, md_timestep=2.0, stride=5)
pairs = build_pairs(sources, config.timestep, every=2)
split = split_by_trajectory(pairs, 0.34, seed=0)
settings = ForecastFitSettings(epochs=epochs, batch_size=4, ema_decay=0.9, learning_rate=5e-3)
result = fit_forecaster(split, config, settings, checkpoint=out + ".run", resume=resume == "resume")
rank, _ = distributed_setup("cpu")
# one file per rank: the ranks share torchrun's stdout, where lines can mix under load
with open(f"{out}.rank{rank}", "w") as record:
    print("examples", rank, result.history[0]["train_examples"], len(split[0]), file=record)
if rank == 0:
    torch.save(result.model.state_dict(), out)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
    paths = copper_reference(tmp_path / "cu.h5", equilibration_steps=20, segments=3,
                             segment_steps=60, decorrelation_steps=10)  # fmt: skip
    sources = [str(p) for p in paths]
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), "2", "new",
                             *sources], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]

    def two_processes(out: str, epochs: int, resume: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                   "--master_port", str(free_port()), str(script), str(tmp_path / out),
                   str(epochs), resume, *sources]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    double = two_processes("two.pt", 2, "new")
    assert double.returncode == 0, double.stderr[-2000:]
    # each process trained on its half of every global batch
    seen = [path.read_text().split() for path in sorted(tmp_path.glob("two.pt.rank*"))]
    assert sorted(int(s[1]) for s in seen) == [0, 1], double.stdout[-2000:] + double.stderr[-2000:]
    assert sum(int(s[2]) for s in seen) == int(seen[0][3])
    assert all(int(s[2]) < int(s[3]) for s in seen)
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    changed = 0
    for key, value in one.items():
        assert torch.allclose(value, two[key], rtol=1e-9, atol=1e-11), key
        changed += int(value.is_floating_point() and value.abs().sum() > 0)
    assert changed > 5
    # interrupted after one epoch and resumed under torchrun: every rank continues from
    # the state rank 0 wrote, and the result is the uninterrupted run's
    assert two_processes("cut.pt", 1, "new").returncode == 0
    resumed = two_processes("cut.pt", 2, "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    cut = torch.load(tmp_path / "cut.pt", weights_only=True)
    for key, value in two.items():
        assert torch.allclose(value, cut[key], rtol=1e-9, atol=1e-11), key
