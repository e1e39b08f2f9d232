"""Selective scan from a given start state on the Triton kernels, which themselves always start from zero.

The recurrence is linear in its state, so a scan started from ``h0`` is the scan started from zero plus the start
state carried forward by the decays alone:

    h_t = h_t|zero + exp(A * S_t) * h0,        S_t = delta'_1 + ... + delta'_t   (A constant in time)
    y_t = y_t|zero + <C_t, exp(A * S_t) * h0>

The zero-start part runs on the fused kernel (without the gate, which is applied after the sum); the start-state
part is plain PyTorch over time chunks, so autograd gives every gradient, ``h0``'s included. Its cost is one more
exponential per (batch, dim, L, N) element; with gradients, autograd keeps each chunk's (batch, dim, chunk, N)
decay factors, like the PyTorch scan does. This is what continuing an inference cache (chunked prefill, state
passing between training batches) runs on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .selective_scan_ref import _discretized_delta, _per_channel, _start_state

# Time steps per chunk of the start-state term: bounds its (batch, dim, chunk, N) temporaries without autograd.
INITIAL_STATE_CHUNK = 4096


def _c_per_channel(C: torch.Tensor, dim: int, start: int, stop: int) -> torch.Tensor:
    """C over steps start..stop as (batch, dim, T, N) (groups repeated over their channels), or (1, dim, 1, N)."""
    if C.dim() == 2:
        return C.float()[None, :, None, :]
    return _per_channel(C[..., start:stop], dim, torch.float32).transpose(2, 3)


def start_state_term(delta, A, C, h0, delta_bias=None, delta_softplus=False, chunk_size: int = INITIAL_STATE_CHUNK):
    """(y_h (batch, dim, L) fp32, carried (batch, dim, N) fp32): the start state's share of y and of the last state."""
    delta_p = _discretized_delta(delta, delta_bias, delta_softplus, torch.float32)   # (batch, dim, L)
    cumulative = torch.cumsum(delta_p, dim=-1)
    A = A.float()
    h0 = h0.float()
    seqlen = delta.shape[-1]
    parts = []
    for start in range(0, seqlen, chunk_size):
        stop = min(start + chunk_size, seqlen)
        decay = torch.exp(A[None, :, None, :] * cumulative[..., start:stop, None])  # (batch, dim, T, N)
        parts.append((decay * h0[:, :, None, :] * _c_per_channel(C, A.shape[0], start, stop)).sum(-1))
    y_h = torch.cat(parts, dim=-1) if parts else delta_p.new_zeros(delta_p.shape)
    total = cumulative[..., -1:] if seqlen else delta_p.new_zeros(*delta_p.shape[:2], 1)
    return y_h, torch.exp(A[None] * total) * h0


def selective_scan_triton_from_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                                     return_last_state=False, initial_state=None):
    """``selective_scan_triton`` with an ``initial_state`` (batch, dim, N): same arguments and results as
    :func:`mamba_core.ops.selective_scan_ref`."""
    from .selective_scan_triton import selective_scan_triton

    batch, dim, dstate = u.shape[0], u.shape[1], A.shape[1]
    h0 = _start_state(initial_state, batch, dim, dstate, u.new_empty(0, dtype=torch.float32))
    y0, last0 = selective_scan_triton(u, delta, A, B, C, D, None, delta_bias, delta_softplus, return_last_state=True)
    y_h, carried = start_state_term(delta, A, C, h0, delta_bias, delta_softplus)
    y = y0.float() + y_h
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(u.dtype)
    return (out, last0 + carried) if return_last_state else out
