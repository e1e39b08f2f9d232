"""The Triton decode step against the PyTorch reference, and a run of steps against the full scan."""

import pytest
import torch

from mamba_core.ops.selective_scan_ref import selective_scan_ref
from mamba_core.ops.selective_state_update_ref import selective_state_update_ref
from mamba_core.ops.selective_state_update_triton import selective_state_update_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_step_inputs(batch, dim, dstate, groups, has_d, has_z, has_bias, state_dtype=torch.float32,
                     dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, dt=torch.float32):
        return torch.randn(*shape, generator=gen).to(DEVICE, dt)

    bc_shape = (batch, dstate) if groups == 0 else (batch, groups, dstate)
    return {
        "state": rnd(batch, dim, dstate, dt=state_dtype),
        "x": rnd(batch, dim, dt=dtype),
        "dt": (0.5 * torch.rand(batch, dim, generator=gen)).to(DEVICE, dtype),
        "A": (-torch.rand(dim, dstate, generator=gen) - 0.1).to(DEVICE),
        "B": rnd(*bc_shape, dt=dtype),
        "C": rnd(*bc_shape, dt=dtype),
        "D": rnd(dim) if has_d else None,
        "z": rnd(batch, dim, dt=dtype) if has_z else None,
        "dt_bias": rnd(dim) * 0.3 if has_bias else None,
    }


@pytest.mark.parametrize(
    "groups, has_d, has_z, has_bias, softplus, state_dtype, dtype",
    [
        (0, False, False, False, False, torch.float32, torch.float32),
        (0, True, True, True, True, torch.float32, torch.float32),
        (3, True, False, True, True, torch.float32, torch.float32),
        (0, True, True, False, True, torch.bfloat16, torch.bfloat16),
    ],
)
def test_step_matches_reference(groups, has_d, has_z, has_bias, softplus, state_dtype, dtype):
    inputs = make_step_inputs(2, 6, 5, groups, has_d, has_z, has_bias, state_dtype, dtype)
    ref_inputs = {k: (v.clone() if v is not None else None) for k, v in inputs.items()}
    out = selective_state_update_triton(**inputs, dt_softplus=softplus, _block_d=4)
    out_ref = selective_state_update_ref(**ref_inputs, dt_softplus=softplus)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert out.dtype == dtype and inputs["state"].dtype == state_dtype
    torch.testing.assert_close(out.float(), out_ref.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(inputs["state"].float(), ref_inputs["state"].float(), rtol=tol, atol=tol)


def test_steps_reproduce_the_scan():
    batch, dim, seqlen, dstate = 2, 4, 7, 3
    gen = torch.Generator().manual_seed(3)
    u = torch.randn(batch, dim, seqlen, generator=gen)
    delta = torch.rand(batch, dim, seqlen, generator=gen)
    A = -torch.rand(dim, dstate, generator=gen)
    B = torch.randn(batch, dstate, seqlen, generator=gen)
    C = torch.randn(batch, dstate, seqlen, generator=gen)
    D = torch.randn(dim, generator=gen)
    y_ref, last_ref = selective_scan_ref(u, delta, A, B, C, D, delta_softplus=True, return_last_state=True)
    state = torch.zeros(batch, dim, dstate, device=DEVICE)
    ys = [selective_state_update_triton(state, u[..., t].to(DEVICE), delta[..., t].to(DEVICE), A.to(DEVICE),
                                        B[..., t].to(DEVICE), C[..., t].to(DEVICE), D.to(DEVICE), dt_softplus=True)
          for t in range(seqlen)]
    torch.testing.assert_close(torch.stack(ys, -1).cpu(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.cpu(), last_ref, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_value_error():
    inputs = make_step_inputs(1, 4, 2, 0, False, False, False)
    with pytest.raises(ValueError, match="dt"):
        selective_state_update_triton(**{**inputs, "dt": inputs["dt"][:, :3]})
    with pytest.raises(ValueError, match="x has dtype"):
        selective_state_update_triton(**{**inputs, "x": inputs["x"].double()})
    with pytest.raises(ValueError, match="C is on meta"):
        selective_state_update_triton(**{**inputs, "C": torch.randn(1, 2, device="meta")})
