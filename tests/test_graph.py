"""The batched atomic graph: round trips through ASE, devices, dtypes and edge vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, molecule
from conftest import random_atoms

from trajcast_engine.graph import AtomicGraph, from_arrays, from_atoms, to_atoms


def mixed_batch(rng) -> list[Atoms]:
    crystal = bulk("Cu", "fcc", a=3.61).repeat((2, 2, 3))
    # Maxwell-Boltzmann at 600 K: each component has variance kT/m (ASE units)
    sigma = np.sqrt(600 * units.kB / crystal.get_masses())[:, None]
    crystal.set_velocities(rng.normal(size=(len(crystal), 3)) * sigma)
    water = molecule("H2O")
    water.set_masses([1.5, 16.0, 2.014])  # custom masses must survive
    slab = random_atoms(rng, 7, 5.0, (True, True, False))
    slab.set_velocities(rng.normal(0, 0.01, (7, 3)))
    return [crystal, water, slab]


def test_round_trip_through_ase_is_exact(rng):
    images = mixed_batch(rng)
    back = to_atoms(from_atoms(images))
    assert len(back) == len(images)
    for a, b in zip(images, back, strict=True):
        assert np.array_equal(a.numbers, b.numbers)
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell.array, b.cell.array)
        assert np.array_equal(a.pbc, b.pbc)
        assert np.array_equal(a.get_masses(), b.get_masses())
        # ASE stores momenta and the engine Å/fs: p/m and the unit factor cost <= a few ulp
        np.testing.assert_allclose(b.get_velocities(), a.get_velocities(), rtol=1e-15, atol=1e-300)


def test_layout_and_units(rng):
    images = mixed_batch(rng)
    graph = from_atoms(images)
    assert graph.n_systems == 3 and graph.n_atoms == sum(len(a) for a in images)
    assert graph.ptr.tolist() == [0, 12, 15, 22]
    assert graph.system_idx.tolist() == [0] * 12 + [1] * 3 + [2] * 7
    assert graph.cell.shape == (3, 3, 3) and graph.pbc.shape == (3, 3)
    assert graph.species.dtype == torch.int64 and graph.dtype == torch.float64
    v_ase = images[0].get_velocities()[0]
    np.testing.assert_allclose(graph.velocities[0].numpy(), v_ase * units.fs)
    # 600 K Cu: thermal speed sqrt(3kT/m) ~ 0.0048 Å/fs
    speed = graph.velocities[:12].norm(dim=1).pow(2).mean().sqrt().item()
    assert 0.002 < speed < 0.008


def test_no_momenta_means_no_velocities():
    assert from_atoms(molecule("CH4")).velocities is None


def test_dtype_and_device_moves_keep_integers(rng):
    graph = from_atoms(mixed_batch(rng)).with_neighbors(3.0)
    single = graph.to(dtype=torch.float32)
    assert single.positions.dtype == torch.float32 and single.velocities.dtype == torch.float32
    assert single.species.dtype == torch.int64 and single.edge_shift.dtype == torch.int64
    assert single.pbc.dtype == torch.bool
    assert graph.dtype == torch.float64, "to() returns a copy"
    torch.testing.assert_close(single.edge_vectors(), graph.edge_vectors().float())
    with pytest.raises(ValueError, match="floating-point"):
        graph.to(dtype=torch.int32)
    meta = graph.to("meta")
    assert meta.device.type == "meta" and meta.edge_index.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_round_trip(rng):
    graph = from_atoms(mixed_batch(rng)).with_neighbors(3.0)
    there = graph.to("cuda")
    assert there.edge_vectors().device.type == "cuda"
    back = there.to("cpu")
    assert torch.equal(back.positions, graph.positions)
    torch.testing.assert_close(back.edge_vectors(), graph.edge_vectors())


def test_edge_vectors_match_the_pair_convention(rng):
    images = mixed_batch(rng)
    graph = from_atoms(images).with_neighbors(4.0)
    vectors = graph.edge_vectors()
    assert torch.all(vectors.norm(dim=1) < 4.0)
    i, j = graph.edge_index
    assert torch.equal(graph.system_idx[i], graph.system_idx[j])
    # per system, compare with ASE's own distance vectors
    from ase.neighborlist import neighbor_list as ase_nl

    for s, atoms in enumerate(images):
        mine = vectors[graph.system_idx[i] == s].numpy()
        theirs = ase_nl("D", atoms, 4.0)
        np.testing.assert_allclose(
            np.sort(np.linalg.norm(mine, axis=1)), np.sort(np.linalg.norm(theirs, axis=1))
        )


def test_edge_vectors_are_differentiable():
    graph = from_atoms(bulk("Cu", "fcc", a=3.61).repeat(2)).with_neighbors(3.0)
    positions = graph.positions.clone().requires_grad_(True)
    cell = graph.cell.clone().requires_grad_(True)
    energy = graph.replace(positions=positions, cell=cell).edge_vectors().norm(dim=1).sum()
    energy.backward()
    assert positions.grad.abs().max() < 1e-10, "perfect crystal: zero net force"
    assert cell.grad.abs().max() > 0


def test_shape_checks():
    graph = from_arrays(np.zeros((2, 3)), ["H", "H"])
    with pytest.raises(ValueError, match="species has shape"):
        graph.replace(species=torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="given together"):
        graph.replace(edge_index=torch.zeros((2, 0), dtype=torch.int64))
    with pytest.raises(ValueError, match="no edges"):
        graph.edge_vectors()


def test_from_arrays_and_class_constructor_agree():
    atoms = molecule("CH3CH2OH")
    a = from_arrays(atoms.positions, atoms.get_chemical_symbols())
    b = AtomicGraph.from_atoms(atoms)
    for name in ("positions", "species", "masses", "cell", "pbc", "system_idx"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.to_atoms()[0] == atoms


def test_batching_graphs_equals_building_the_batch(rng):
    images = mixed_batch(rng)
    images[1].set_velocities(np.zeros((3, 3)))  # the water had none; the batch gives zeros
    whole = from_atoms(images).with_neighbors(3.0)
    parts = AtomicGraph.batch([from_atoms(a).with_neighbors(3.0) for a in images])
    for name in ("positions", "species", "masses", "cell", "pbc", "system_idx", "velocities"):
        assert torch.equal(getattr(parts, name), getattr(whole, name)), name

    def edges(g):
        return sorted(zip(*g.edge_index.tolist(), map(tuple, g.edge_shift.tolist()), strict=True))

    assert edges(parts) == edges(whole)
    with pytest.raises(ValueError, match="alike"):
        AtomicGraph.batch([whole, from_atoms(images[0])])
