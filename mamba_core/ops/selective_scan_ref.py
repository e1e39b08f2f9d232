"""Pure-PyTorch selective scan (the S6 recurrence of Mamba), the ground truth for every faster kernel.

Semantics are those of mamba_ssm's ``selective_scan_ref`` so that weights and habits carry over:

    delta' = softplus(delta + delta_bias)            (bias and softplus optional)
    h_t    = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t      (zero-order hold on A, Euler on B)
    y_t    = <C_t, h_t> + D * u_t
    out_t  = y_t * silu(z_t)                           (gate optional)

Two implementations with one signature:

* ``selective_scan_ref``: a literal loop over time; slow, obviously right, used by the tests.
* ``selective_scan_chunked``: the fast CPU path (the default off CUDA). Time-major chunks, the state carried
  between them; inside a chunk either one fused multiply-add per step or, for long thin sequences, a two-level
  log-depth parallel scan with no Python loop over time; a hand-written backward (the recurrence in reverse)
  keeps autograd from recording every step. Memory is O(batch*dim*chunk*N).

Both accumulate in fp32 and return the output in ``u``'s dtype. Both take an optional ``initial_state`` (batch, dim,
N): the state before the first step (zero by default), so that a long sequence can be processed in pieces, each
starting from the previous piece's ``last_state`` (chunked prefill, or state passing between training batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_scan_inputs


def _accumulation_dtype(u: torch.Tensor) -> torch.dtype:
    """fp32, or fp64 when the inputs are fp64 (so gradcheck can run in double precision)."""
    return torch.promote_types(u.dtype, torch.float32)


def _discretized_delta(delta: torch.Tensor, delta_bias, delta_softplus: bool, acc: torch.dtype) -> torch.Tensor:
    delta = delta.to(acc)
    if delta_bias is not None:
        delta = delta + delta_bias.to(acc)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def _per_channel(t: torch.Tensor, dim: int, acc: torch.dtype) -> torch.Tensor:
    """B or C as (batch, dim, N, L) when input-dependent (groups repeated over their channels), else (dim, N)."""
    t = t.to(acc)
    if t.dim() == 3:
        return t.unsqueeze(1).expand(-1, dim, -1, -1)
    if t.dim() == 4:
        return t.repeat_interleave(dim // t.shape[1], dim=1)
    return t


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Inputs in the accumulation dtype: u, discretised delta, A, and B/C broadcast per channel."""
    acc, dim = _accumulation_dtype(u), u.shape[1]
    delta = _discretized_delta(delta, delta_bias, delta_softplus, acc)
    return u.to(acc), delta, A.to(acc), _per_channel(B, dim, acc), _per_channel(C, dim, acc)


def _start_state(initial_state, batch: int, dim: int, dstate: int, like: torch.Tensor) -> torch.Tensor:
    """The state before step 0: ``initial_state`` (validated, in the accumulation dtype) or zeros."""
    if initial_state is None:
        return like.new_zeros(batch, dim, dstate)
    if tuple(initial_state.shape) != (batch, dim, dstate):
        raise ValueError(f"initial_state must be (batch, dim, N) = {(batch, dim, dstate)}, "
                         f"got {tuple(initial_state.shape)}")
    if initial_state.device != like.device:
        raise ValueError(f"initial_state is on {initial_state.device}, the inputs on {like.device}")
    return initial_state.to(like.dtype)


def _finish(y, u, D, z, dtype, last_state, return_last_state):
    out = y if D is None else y + u * D.to(y.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(y.dtype))
    out = out.to(dtype)
    return (out, last_state) if return_last_state else out


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None):
    """Selective scan by an explicit loop over time.

    Args:
        u: (batch, dim, L) input.
        delta: (batch, dim, L) step sizes (before ``delta_bias``/softplus).
        A: (dim, N) real state matrix (diagonal, one row per channel), fp32.
        B: (dim, N) fixed, (batch, N, L) input-dependent or (batch, G, N, L) grouped input matrix.
        C: same forms as B, output matrix.
        D: (dim,) skip connection, optional.
        z: (batch, dim, L) gate, optional; the output is multiplied by silu(z).
        delta_bias: (dim,) added to delta before the softplus, optional.
        delta_softplus: apply softplus to delta.
        return_last_state: also return the final state (batch, dim, N) in fp32 (fp64 for fp64 inputs).
        initial_state: (batch, dim, N) state before the first step, optional (zeros); gradients flow into it.

    Returns:
        out (batch, dim, L) in u's dtype, and the last state if asked.
    """
    batch, dim, seqlen, dstate = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    u_f, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    h = _start_state(initial_state, batch, dim, dstate, u_f)
    ys = []
    for t in range(seqlen):
        d_t = delta[:, :, t, None]
        b_t = B if B.dim() == 2 else B[..., t]
        c_t = C if C.dim() == 2 else C[..., t]
        h = torch.exp(d_t * A) * h + d_t * b_t * u_f[:, :, t, None]
        ys.append((h * c_t).sum(-1))
    y = torch.stack(ys, dim=2) if ys else u_f.new_zeros(batch, dim, 0)
    return _finish(y, u_f, D, z, u.dtype, h, return_last_state)


def _hillis_steele(a: torch.Tensor, h: torch.Tensor, axis: int, need_prod: bool):
    """In-place log-depth scan of h_t = a_t * h_{t-1} + h_t along ``axis``; a becomes the running product if asked."""
    length, step = a.shape[axis], 1
    while step < length:
        cur = [slice(None)] * a.dim()
        prev = [slice(None)] * a.dim()
        cur[axis], prev[axis] = slice(step, None), slice(None, -step)
        cur, prev = tuple(cur), tuple(prev)
        h[cur] = a[cur] * h[prev] + h[cur]
        if need_prod or step * 2 < length:
            a[cur] = a[cur] * a[prev]
        step *= 2
    return a, h


def _parallel_scan(a: torch.Tensor, b: torch.Tensor, block: int = 16) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t (h_{-1} = 0) along axis 0, log-depth and fully vectorised.

    Two levels: a scan inside blocks of ``block`` steps, a scan over the blocks' end states, then each block's
    local result is corrected by its incoming state; about log2(block) + 2 multiply-adds per element.
    """
    length, rest = a.shape[0], a.shape[1:]
    n_blocks = -(-length // block)
    pad = n_blocks * block - length
    pad_spec = (0, 0) * len(rest) + (0, pad)
    a = F.pad(a, pad_spec, value=1.0) if pad else a.clone()          # a=1, b=0 leave the state unchanged
    h = F.pad(b, pad_spec) if pad else b.clone()
    a = a.view(n_blocks, block, *rest)
    h = h.view(n_blocks, block, *rest)
    a, h = _hillis_steele(a, h, axis=1, need_prod=True)
    if n_blocks > 1:
        _, ends = _hillis_steele(a[:, -1].clone(), h[:, -1].clone(), axis=0, need_prod=False)
        h[1:] += a[1:] * ends[:-1, None]
    return h.view(n_blocks * block, *rest)[:length]


def _sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence as one fused multiply-add per step: the least work, best when each step is large."""
    h = torch.empty_like(b)
    h[0] = b[0]
    for t in range(1, a.shape[0]):
        torch.addcmul(b[t], a[t], h[t - 1], out=h[t])
    return h


# Below this many elements per time step, Python's per-step overhead outweighs the parallel scan's extra work.
_SEQUENTIAL_MIN_STEP_NUMEL = 4096


def _linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # On a GPU every step of the loop is a kernel launch: the log-depth scan wins at any width.
    if a[0].numel() >= _SEQUENTIAL_MIN_STEP_NUMEL and not a.is_cuda:
        return _sequential_scan(a, b)
    return _parallel_scan(a, b)


class _LinearRecurrence(torch.autograd.Function):
    """h_t = a_t * h_{t-1} + b_t along axis 0 (time-major), starting from h0, without autograd recording each step.

    The backward is the same recurrence run in reverse: grad_b_t = grad_h_t + a_{t+1} * grad_b_{t+1},
    grad_a_t = grad_b_t * h_{t-1}, grad_h0 = a_0 * grad_b_0.
    """

    @staticmethod
    def forward(ctx, a, b, h0):
        b = torch.cat([(b[0] + a[0] * h0)[None], b[1:]])
        h = _linear_scan(a, b)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        a_next = torch.cat([a[1:], torch.zeros_like(a[:1])])
        grad_b = _linear_scan(a_next.flip(0), grad_h.flip(0).contiguous()).flip(0)
        h_prev = torch.cat([h0[None], h[:-1]])
        return grad_b * h_prev, grad_b, a[0] * grad_b[0]


def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False, chunk_size: int = 2048, initial_state=None):
    """Fast PyTorch selective scan: same arguments, shapes and result as :func:`selective_scan_ref`.

    Works time-major on chunks of ``chunk_size`` steps (bounding memory to batch*dim*chunk_size*N floats per
    intermediate), carrying the state between chunks. Inside a chunk the recurrence runs either as one fused
    multiply-add per step (when a step holds many elements) or as a two-level log-depth parallel scan with no
    Python loop over time (long, thin sequences); both have a hand-written backward, so autograd stores one
    state tensor per chunk rather than one per step.
    """
    batch, dim, seqlen, dstate = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    u_f, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    B_tm = B if B.dim() == 2 else B.permute(3, 0, 1, 2)                      # (L, batch, dim, N)
    C_tm = C if C.dim() == 2 else C.permute(3, 0, 1, 2)
    u_tm, delta_tm = u_f.permute(2, 0, 1), delta.permute(2, 0, 1)            # (L, batch, dim)
    h = _start_state(initial_state, batch, dim, dstate, u_f)
    ys = []
    for start in range(0, seqlen, chunk_size):
        stop = min(start + chunk_size, seqlen)
        d_c = delta_tm[start:stop, ..., None]                                   # (T, batch, dim, 1)
        b_c = B_tm if B_tm.dim() == 2 else B_tm[start:stop]
        c_c = C_tm if C_tm.dim() == 2 else C_tm[start:stop]
        h_chunk = _LinearRecurrence.apply(torch.exp(d_c * A), d_c * b_c * u_tm[start:stop, ..., None], h)
        ys.append((h_chunk * c_c).sum(-1))
        h = h_chunk[-1]
    y = torch.cat(ys).permute(1, 2, 0) if ys else u_f.new_zeros(batch, dim, 0)
    return _finish(y, u_f, D, z, u.dtype, h, return_last_state)
