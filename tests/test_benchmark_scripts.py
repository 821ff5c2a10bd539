"""The benchmark scripts run and print their tables (tiny sizes: this checks they work,
not how fast anything is)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_neighbors_benchmark(tmp_path):
    out_json = tmp_path / "nl.json"
    out = run(
        "neighbors.py",
        "--sizes",
        "100",
        "--threads",
        "1",
        "--budget",
        "0.01",
        "--skip-ase",
        "--json",
        str(out_json),
    )
    assert "trajcast-engine" in out and "pairs = ours" in out
    rows = json.loads(out_json.read_text())["rows"]
    ours = [r for r in rows if r["engine"] == "trajcast-engine"]
    assert len(ours) == 2 and all(r["pairs"] > 0 for r in ours)
    assert "NO" not in out.split("pairs = ours")[1], "every installed peer finds the same pairs"


def test_trajectory_benchmark(tmp_path):
    out_json = tmp_path / "traj.json"
    out = run(
        "trajectory.py",
        "--frames",
        "20",
        "--atoms",
        "100",
        "--repeats",
        "1",
        "--step-ms",
        "5",
        "--json",
        str(out_json),
    )
    assert "mdtraj HDF5 (default zlib)" in out and "writer share" in out
    data = json.loads(out_json.read_text())
    assert len(data["rows"]) == 6 and data["writer_ms_per_frame"] > 0


def test_crash_benchmark(tmp_path):
    out = run("trajectory_crash.py", "--kills", "3", "--keep", str(tmp_path))
    counts = {
        line[:16].strip(): int(line[16:].split()[0])
        for line in out.splitlines()
        if line[:16].strip() in ("intact, resumed", "torn", "unreadable", "resume failed")
    }
    assert counts == {"intact, resumed": 3, "torn": 0, "unreadable": 0, "resume failed": 0}


def test_potential_benchmark_without_mace(tmp_path):
    out_json = tmp_path / "pot.json"
    out = run(
        "potential.py",
        "--sizes",
        "64",
        "--channels",
        "4",
        "--lmax",
        "1",
        "--repeats",
        "1",
        "--mace-python",
        str(tmp_path / "no-python"),
        "--json",
        str(out_json),
    )
    assert "MACE not run" in out
    assert json.loads(out_json.read_text())["trajcast_engine"][0]["ms"] > 0


def test_rollout_benchmark(tmp_path):
    out_json = tmp_path / "rollout.json"
    out = run("rollout.py", "--sizes", "32", "--steps", "2", "--json", str(out_json))
    assert "fc ns/day" in out and "neighbours" in out
    row = json.loads(out_json.read_text())["rows"][0]
    assert row["atoms"] == 32 and row["ns_per_day"] > 0 and "classic" in row
    assert row["rebuild_every_step"]["neighbour_builds"] == 5  # warm-up 3 + 2 timed
