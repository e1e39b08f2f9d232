"""Backend selection: the reference on CPU, a switch that forces it, and clear errors for unknown backends."""

import pytest
import torch

from mamba_core.ops import resolve_backend, selective_scan_fn, selective_scan_ref


def test_auto_picks_reference_on_cpu_and_triton_on_cuda(monkeypatch):
    monkeypatch.delenv("MAMBA_CORE_FORCE_REFERENCE", raising=False)
    assert resolve_backend("auto", is_cuda=False) == "reference"
    assert resolve_backend("auto", is_cuda=True) == "triton"
    monkeypatch.setenv("MAMBA_CORE_FORCE_REFERENCE", "1")
    assert resolve_backend("auto", is_cuda=True) == "reference"
    assert resolve_backend("triton", is_cuda=True) == "reference"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cuda", is_cuda=True)


def test_cpu_dispatch_equals_reference():
    g = torch.Generator().manual_seed(0)
    u, dt = torch.randn(1, 3, 300, generator=g), torch.rand(1, 3, 300, generator=g)
    A, B, C = -torch.rand(3, 4, generator=g), torch.randn(1, 4, 300, generator=g), torch.randn(1, 4, 300, generator=g)
    torch.testing.assert_close(selective_scan_fn(u, dt, A, B, C), selective_scan_ref(u, dt, A, B, C),
                               rtol=1e-5, atol=1e-5)
