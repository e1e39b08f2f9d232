"""The PyTorch selective scans against an independent closed form, each other, and autograd's numerical check."""

import itertools

import pytest
import torch

from mamba_core.ops import selective_scan_chunked, selective_scan_ref
from mamba_core.ops.checks import check_scan_inputs


def make_inputs(bc_form, batch=2, dim=4, seqlen=9, dstate=3, groups=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    bc_shape = {"fixed": (dim, dstate), "variable": (batch, dstate, seqlen),
                "grouped": (batch, groups, dstate, seqlen)}[bc_form]
    return dict(u=rnd(batch, dim, seqlen), delta=rnd(batch, dim, seqlen).abs() * 0.5,
                A=-torch.rand(dim, dstate, generator=g, dtype=dtype) * 2 - 0.1, B=rnd(*bc_shape), C=rnd(*bc_shape),
                D=rnd(dim), z=rnd(batch, dim, seqlen), delta_bias=rnd(dim) * 0.3)


def closed_form(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """y_t = sum_{s<=t} <C_t, exp(A * sum_{r=s+1..t} delta_r) * delta_s * B_s> u_s, computed in float64 without
    any recurrence: an independent statement of the same semantics."""
    batch, dim, seqlen = u.shape
    delta = delta.double() + (0 if delta_bias is None else delta_bias.double()[:, None])
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)

    def at(t, s):  # B or C of channel d at time s, as (batch, dim, N)
        if t.dim() == 2:
            return t.double().expand(batch, -1, -1)
        if t.dim() == 3:
            return t[..., s].double()[:, None].expand(-1, dim, -1)
        return t[..., s].double().repeat_interleave(dim // t.shape[1], dim=1)

    cum = torch.cumsum(delta, dim=-1)                                        # (batch, dim, L)
    y = torch.zeros(batch, dim, seqlen, dtype=torch.float64)
    for t in range(seqlen):
        for s in range(t + 1):
            decay = torch.exp(A.double() * (cum[..., t] - cum[..., s])[..., None])
            y[..., t] += (at(C, t) * decay * at(B, s)).sum(-1) * delta[..., s] * u[..., s].double()
    if D is not None:
        y = y + u.double() * D.double()[:, None]
    if z is not None:
        y = y * torch.nn.functional.silu(z.double())
    return y


@pytest.mark.parametrize("bc_form", ["fixed", "variable", "grouped"])
@pytest.mark.parametrize("with_D,with_z,with_bias,softplus", list(itertools.product([False, True], repeat=4))[::3])
def test_reference_matches_closed_form(bc_form, with_D, with_z, with_bias, softplus):
    x = make_inputs(bc_form)
    kwargs = dict(D=x["D"] if with_D else None, z=x["z"] if with_z else None,
                  delta_bias=x["delta_bias"] if with_bias else None, delta_softplus=softplus)
    expected = closed_form(x["u"], x["delta"], x["A"], x["B"], x["C"], **kwargs)
    got = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], **kwargs)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("bc_form", ["fixed", "variable", "grouped"])
@pytest.mark.parametrize("chunk_size", [1, 4, 7, 64])
def test_chunked_equals_loop(bc_form, chunk_size):
    x = make_inputs(bc_form, seqlen=23, dtype=torch.float32)
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"], True, True)
    y_ref, h_ref = selective_scan_ref(*args)
    y, h = selective_scan_chunked(*args, chunk_size=chunk_size)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)


def test_last_state_is_one_recurrence_step_after_the_previous_one():
    x = make_inputs("variable", seqlen=6)
    u, delta, A, B, C = x["u"], x["delta"], x["A"], x["B"], x["C"]
    _, h_prev = selective_scan_ref(u[..., :-1], delta[..., :-1], A, B[..., :-1], C[..., :-1], return_last_state=True)
    y, h_last = selective_scan_ref(u, delta, A, B, C, return_last_state=True)
    d_t = delta[..., -1, None]
    expected = torch.exp(d_t * A) * h_prev + d_t * B[:, None, :, -1] * u[..., -1, None]
    torch.testing.assert_close(h_last, expected)
    torch.testing.assert_close(y[..., -1], (h_last * C[:, None, :, -1]).sum(-1))


def test_output_dtype_follows_u_and_accumulates_in_fp32():
    x = make_inputs("variable", dtype=torch.float32)
    y32 = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"])
    y16 = selective_scan_ref(x["u"].bfloat16(), x["delta"], x["A"], x["B"], x["C"], x["D"])
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("fn", [selective_scan_ref, selective_scan_chunked])
@pytest.mark.parametrize("bc_form", ["fixed", "variable", "grouped"])
def test_gradcheck(fn, bc_form):
    x = make_inputs(bc_form, batch=1, dim=2, seqlen=5, dstate=2, groups=2)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    tensors = [x[n].clone().requires_grad_(True) for n in names]

    def f(*ts):
        return fn(*ts, delta_softplus=True)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("change,message", [
    (lambda x: x.update(u=x["u"][0]), "u must be"),
    (lambda x: x.update(delta=x["delta"][:, :, :-1]), "delta must have shape"),
    (lambda x: x.update(A=x["A"][:-1]), "A must be"),
    (lambda x: x.update(B=x["B"][..., :-1]), "B must have shape"),
    (lambda x: x.update(C=torch.randn(3, 3, 3, 3, 3)), "C must be"),
    (lambda x: x.update(D=torch.ones(7)), "D must have shape"),
    (lambda x: x.update(z=x["z"][:1]), "z must have shape"),
    (lambda x: x.update(u=x["u"].long()), "u must be a floating-point"),
    (lambda x: x.update(B=torch.randn(2, 3, 3, 9)), "B has 3 groups"),
])
def test_bad_input_names_the_argument(change, message):
    x = make_inputs("variable")
    change(x)
    with pytest.raises(ValueError, match=message):
        selective_scan_ref(**x)
    with pytest.raises(ValueError, match=message):
        check_scan_inputs(**x)


@pytest.mark.parametrize("dim", [2, 300])          # 2 -> parallel (log-depth) scan, 300 -> sequential scan
def test_both_chunked_recurrences_match_the_loop_with_gradients(dim):
    x = make_inputs("variable", batch=2, dim=dim, seqlen=45, dstate=8, dtype=torch.float32, seed=4)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    grads = []
    for fn, kw in ((selective_scan_ref, {}), (selective_scan_chunked, {"chunk_size": 20})):
        ts = [x[n].clone().requires_grad_(True) for n in names]
        y, h = fn(*ts, delta_softplus=True, return_last_state=True, **kw)
        (y.square().sum() + h.sum()).backward()
        grads.append([y.detach(), h.detach()] + [t.grad for t in ts])
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
