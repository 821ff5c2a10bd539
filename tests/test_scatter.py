"""The scatter helper sums edges into atoms, with or without torch-scatter."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from trajcast_engine.nn import scatter_backend, scatter_sum


def reference_sum(src, index, n):
    out = torch.zeros((n, *src.shape[1:]), dtype=src.dtype)
    for e in range(src.shape[0]):
        out[index[e]] += src[e]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_a_plain_loop(dtype, monkeypatch):
    monkeypatch.setenv("TRAJCAST_SCATTER", "index_add")
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(300, 4, 5, generator=gen, dtype=dtype)
    index = torch.randint(0, 40, (300,), generator=gen)
    out = scatter_sum(src, index, 45)
    assert out.shape == (45, 4, 5)
    torch.testing.assert_close(out, reference_sum(src, index, 45))
    assert torch.all(out[40:] == 0)


def test_gradient_flows_to_every_edge(monkeypatch):
    monkeypatch.setenv("TRAJCAST_SCATTER", "index_add")
    src = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    weights = torch.randn(4, 3, dtype=torch.float64)
    (scatter_sum(src, index, 4) * weights).sum().backward()
    torch.testing.assert_close(src.grad, weights[index])


@pytest.mark.skipif(
    importlib.util.find_spec("torch_scatter") is None,
    reason="optional extra trajcast-engine[scatter] not installed",
)
def test_torch_scatter_gives_the_same_sums(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(5000, 16, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 700, (5000,), generator=gen)
    monkeypatch.setenv("TRAJCAST_SCATTER", "torch_scatter")
    a = scatter_sum(src, index, 700)
    monkeypatch.setenv("TRAJCAST_SCATTER", "index_add")
    b = scatter_sum(src, index, 700)
    torch.testing.assert_close(a, b)


def test_backend_choice_and_errors(monkeypatch):
    monkeypatch.delenv("TRAJCAST_SCATTER", raising=False)
    installed = importlib.util.find_spec("torch_scatter") is not None
    assert scatter_backend() == ("torch_scatter" if installed else "index_add")
    monkeypatch.setenv("TRAJCAST_SCATTER", "fast")
    with pytest.raises(ValueError, match="TRAJCAST_SCATTER"):
        scatter_backend()
    monkeypatch.delenv("TRAJCAST_SCATTER")
    with pytest.raises(ValueError, match="index must have shape"):
        scatter_sum(torch.ones(4, 2), torch.zeros(3, dtype=torch.int64), 2)
