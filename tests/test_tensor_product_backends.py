"""Every tensor-product backend computes e3nn's product: values and gradients (float64).

The lean channel-wise product is the default; the shipped models, trained through e3nn's
module, must give the same outputs with it. cuEquivariance runs its naive PyTorch path on
a CPU, so its correspondence with e3nn (path order, normalisation) is checked here too;
its CUDA kernel is compared where a GPU is present.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from e3nn import o3
from test_forecaster_model import crystal, make_forecaster, organic
from test_potential_physics import copper, make_model

from trajcast_engine.graph import from_atoms
from trajcast_engine.models import shipped_model_path
from trajcast_engine.nn.channelwise import ChannelwiseProduct, describe_backend, set_backend
from trajcast_engine.nn.interaction import hidden_irreps, uvu_tensor_product
from trajcast_engine.nn.model_io import load_model

HAS_CUEQ = importlib.util.find_spec("cuequivariance_torch") is not None
needs_cueq = pytest.mark.skipif(not HAS_CUEQ, reason="cuequivariance-torch not installed")


def products(lmax: int, both: bool, scalar_input: bool):
    irreps = hidden_irreps(4, lmax, both)
    irreps_in = o3.Irreps("4x0e") if scalar_input else irreps
    sh = o3.Irreps.spherical_harmonics(lmax)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn's 3j buffers, exact for the comparison
    try:
        reference, _ = uvu_tensor_product(irreps_in, sh, irreps)
    finally:
        torch.set_default_dtype(default)
    generator = torch.Generator().manual_seed(lmax)
    x = torch.randn(30, irreps_in.dim, dtype=torch.float64, generator=generator)
    y = o3.spherical_harmonics(
        sh, torch.randn(30, 3, dtype=torch.float64, generator=generator), True
    )
    w = torch.randn(30, reference.weight_numel, dtype=torch.float64, generator=generator)
    return reference, x.requires_grad_(), y.requires_grad_(), w.requires_grad_()


def assert_same_product(kernel, reference, x, y, w) -> None:
    expected, got = reference(x, y, w), kernel(x, y, w)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(expected)
    grads_e = torch.autograd.grad((expected * probe).sum(), (x, y, w))
    grads_g = torch.autograd.grad((got * probe).sum(), (x, y, w))
    for a, b in zip(grads_g, grads_e, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("lmax", [1, 2, 3])
@pytest.mark.parametrize("both", [False, True])
@pytest.mark.parametrize("scalar_input", [False, True])
def test_channelwise_equals_e3nn(lmax, both, scalar_input):
    reference, x, y, w = products(lmax, both, scalar_input)
    assert_same_product(ChannelwiseProduct(reference), reference, x, y, w)


@needs_cueq
@pytest.mark.parametrize("lmax", [1, 2])
@pytest.mark.parametrize("both", [False, True])
def test_cuequivariance_equals_e3nn(lmax, both):
    from trajcast_engine.nn.cueq import CueqProduct

    reference, x, y, w = products(lmax, both, scalar_input=False)
    kernel = CueqProduct(reference, device="cpu", dtype=torch.float64)
    assert "naive PyTorch fallback" in kernel.describe()  # it says what runs on a CPU
    assert_same_product(kernel, reference, x, y, w)


def backends() -> list[str]:
    return ["e3nn", "channelwise"] + (["cuequivariance"] if HAS_CUEQ else [])


# a model is built in torch's default float32 and then cast, so e3nn's own 3j buffers carry
# float32 rounding (1e-8 relative) that the other backends, built from exact 3j, do not
MODEL_RTOL, MODEL_ATOL = 1e-7, 1e-10


def test_potential_outputs_do_not_depend_on_the_backend():
    model = make_model(both_parities=True)
    graph = from_atoms(copper(), dtype=torch.float64).with_neighbors(model.config.cutoff)
    results = {}
    for name in backends():
        assert set_backend(model, name).startswith(name)
        out = model(graph, compute_stress=True)
        results[name] = out
    for out in results.values():
        for key in ("energy", "forces", "stress"):
            torch.testing.assert_close(
                out[key], results["e3nn"][key], rtol=MODEL_RTOL, atol=MODEL_ATOL
            )


def test_forecaster_outputs_do_not_depend_on_the_backend():
    model = make_forecaster()
    graphs = [
        from_atoms(a, dtype=torch.float64).with_neighbors(4.0) for a in (crystal(), organic())
    ]
    for graph in graphs:
        results = {}
        for name in backends():
            set_backend(model, name)
            results[name] = model(graph)
        for out in results.values():
            for key, value in out.items():
                torch.testing.assert_close(
                    value, results["e3nn"][key], rtol=MODEL_RTOL, atol=MODEL_ATOL
                )


def test_shipped_forecaster_gives_the_same_step_with_the_lean_product():
    """The shipped file was trained through e3nn's module; the default product agrees in
    its own float32."""
    model = load_model(shipped_model_path("cu-emt-forecaster"))
    assert describe_backend(model) == "channelwise (cpu)"
    atoms = crystal()
    atoms.numbers[:] = 29
    graph = from_atoms(atoms, dtype=torch.float32).with_neighbors(model.config.cutoff)
    lean = model(graph)
    set_backend(model, "e3nn")
    reference = model(graph)
    for key in lean:
        torch.testing.assert_close(lean[key], reference[key], rtol=1e-4, atol=1e-6)


def test_unknown_backend_and_missing_package_are_clear_errors(monkeypatch):
    model = make_model()
    with pytest.raises(ValueError, match="unknown tensor-product backend 'triton'.*choose from"):
        set_backend(model, "triton")
    import trajcast_engine.nn.cueq as cueq

    monkeypatch.setattr(cueq, "cuequivariance_available", lambda: (False, "not installed (x)"))
    with pytest.raises(ImportError, match="pip install cuequivariance-torch"):
        set_backend(model, "cuequivariance")


@pytest.mark.skipif(not (HAS_CUEQ and torch.cuda.is_available()), reason="needs CUDA + cueq")
def test_cuequivariance_kernel_matches_e3nn_on_cuda():
    model = make_model(both_parities=True).to(torch.float32).cuda()
    graph = from_atoms(copper(), dtype=torch.float32).to("cuda").with_neighbors(5.0)
    reference = model(graph)
    description = set_backend(model, "cuequivariance")
    assert "CUDA kernel" in description, description
    got = model(graph)
    for key in ("energy", "forces"):
        torch.testing.assert_close(got[key], reference[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_layers_match_eager_and_a_miscompilation_stops_the_run():
    from trajcast_engine.nn.compiled import _checked
    from trajcast_engine.nn.execution import configure

    model = make_forecaster()
    graph = from_atoms(crystal(), dtype=torch.float64).with_neighbors(4.0)
    eager = model(graph)
    assert "torch.compile: on (checked against eager on first use)" in configure(
        model, compile=True
    )
    compiled = model(graph)  # first call: compiled and checked
    for key, value in compiled.items():
        torch.testing.assert_close(value, eager[key], rtol=1e-10, atol=1e-12)
    assert "torch.compile: off" in configure(model)

    layer = model.layers[0]
    broken = _checked(0, layer, lambda *args: layer(*args) * 1.001)
    model.compiled_layers = [broken] + list(model.layers[1:])
    with pytest.raises(RuntimeError, match="torch.compile changed the output of layer 0"):
        model(graph)


@pytest.mark.slow
def test_compiled_potential_forces_match_eager():
    model = make_model()
    atoms = copper()
    from trajcast_engine.calculator import TrajcastCalculator

    atoms.calc = TrajcastCalculator(model)
    expected = atoms.get_forces().copy()
    atoms.calc = TrajcastCalculator(model, compile=True)
    assert "torch.compile: on" in atoms.calc.execution
    np.testing.assert_allclose(atoms.get_forces(), expected, rtol=1e-9, atol=1e-10)


def test_edge_chunks_give_the_same_forecast_and_forces():
    from trajcast_engine.calculator import TrajcastCalculator
    from trajcast_engine.nn.execution import configure

    model = make_forecaster()
    graph = from_atoms(crystal(), dtype=torch.float64).with_neighbors(4.0)
    whole = model(graph)
    assert configure(model, edge_chunk=37).endswith("edges in chunks of 37")
    chunked = model(graph)
    for key, value in chunked.items():
        torch.testing.assert_close(value, whole[key], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="edge chunk must be a positive number"):
        configure(model, edge_chunk=-1)

    atoms = copper()
    atoms.calc = TrajcastCalculator(make_model())
    expected = atoms.get_forces().copy(), atoms.get_stress().copy()
    atoms.calc = TrajcastCalculator(make_model(), edge_chunk=50)
    np.testing.assert_allclose(atoms.get_forces(), expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), expected[1], rtol=1e-10, atol=1e-12)
