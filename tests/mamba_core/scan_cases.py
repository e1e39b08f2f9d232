"""Shared inputs and checks of the Triton selective-scan tests (imported as ``tests.mamba_core.scan_cases``).

Random inputs in mamba's usual ranges, a launch spy for kernel objects, and the comparison of a kernel's output,
last state and gradients with the PyTorch loop reference, relative to each tensor's largest magnitude (gradients
sum over L, so a per-element rtol would be too strict).
"""

import torch

from mamba_core.ops.selective_scan_ref import selective_scan_ref
from mamba_core.ops.selective_scan_triton import selective_scan_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, seqlen, dstate, b_form, c_form, has_d=True, has_z=True, has_bias=True,
                dtype=torch.float32, groups=1, seed=0):
    """Inputs by name; b_form/c_form: 'fixed' (dim, N), 'var' (batch, N, L) or 'group' (batch, groups, N, L)."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, dt=torch.float32):
        return (torch.randn(*shape, generator=gen) * scale).to(DEVICE, dt).requires_grad_()

    def bc(form):
        if form == "fixed":
            return rnd(dim, dstate)
        if form == "var":
            return rnd(batch, dstate, seqlen, dt=dtype)
        return rnd(batch, groups, dstate, seqlen, dt=dtype)

    return {
        "u": rnd(batch, dim, seqlen, dt=dtype),
        "delta": (0.5 * torch.rand(batch, dim, seqlen, generator=gen)).to(DEVICE, dtype).requires_grad_(),
        "A": (-0.5 * torch.rand(dim, dstate, generator=gen) - 0.1).to(DEVICE).requires_grad_(),
        "B": bc(b_form),
        "C": bc(c_form),
        "D": rnd(dim) if has_d else None,
        "z": rnd(batch, dim, seqlen, dt=dtype) if has_z else None,
        "delta_bias": rnd(dim, scale=0.3) if has_bias else None,
    }


class LaunchSpy:
    """Stands in for a Triton kernel object in ``selective_scan_triton``'s namespace and records its launches (their
    keyword arguments, and ``_kernel``: ``tag`` when given)."""

    def __init__(self, kernel, tag=None):
        self.kernel, self.launches, self.tag = kernel, [], tag

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append(kwargs if self.tag is None else dict(kwargs, _kernel=self.tag))
            return self.kernel[grid](*args, **kwargs)
        return launch


def run_both(inputs, softplus=True, **kernel_kwargs):
    """Output, last state and gradients of the kernel and of the reference, for one random output gradient."""
    names = [k for k in ARG_NAMES if inputs[k] is not None]
    results = []
    for fn, kw in ((selective_scan_triton, kernel_kwargs), (selective_scan_ref, {})):
        out, last = fn(*[inputs[k] for k in ARG_NAMES], delta_softplus=softplus, return_last_state=True, **kw)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
        grads = torch.autograd.grad((out.float() * grad_out.float()).sum(), [inputs[k] for k in names])
        results.append((out, last, dict(zip(names, grads, strict=True))))
    return results


def assert_close_scaled(actual, expected, tol, what):
    """max |actual - expected| <= tol * max |expected|, same dtype and shape."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    err = (actual.float() - expected.float()).abs().max().item()
    scale = max(expected.float().abs().max().item(), 1e-3)
    assert err <= tol * scale, f"{what}: max error {err:.3e} vs scale {scale:.3e}"


def check_against_reference(inputs, tol, grad_tol, softplus=True, **kernel_kwargs):
    """Output and last state within ``tol``, every gradient within ``grad_tol`` and in its input's dtype."""
    (out, last, grads), (out_r, last_r, grads_r) = run_both(inputs, softplus, **kernel_kwargs)
    assert_close_scaled(out, out_r, tol, "out")
    assert last.dtype == torch.float32
    assert_close_scaled(last, last_r, tol, "last_state")
    for name, g in grads.items():
        assert g.dtype == inputs[name].dtype, name
        assert_close_scaled(g, grads_r[name], grad_tol, f"grad {name}")
