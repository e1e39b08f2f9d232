"""One decoding step of the selective SSM on a (batch, dim, N) state, in PyTorch.

This is the recurrent form of the scan in ``selective_scan_ref``: with the state h of the previous token,

    dt' = softplus(dt + dt_bias);  h <- exp(dt' * A) * h + dt' * B * x;  out = (<C, h> + D * x) * silu(z)

The state is updated in place (fp32 math, stored back in the state's dtype), so a decoder's cost per token is
constant, whatever the sequence position. Semantics follow mamba_ssm's ``selective_state_update_ref``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_state_update_inputs


def _per_channel_step(t: torch.Tensor, dim: int) -> torch.Tensor:
    """B or C of one step as (batch, dim, N): (batch, N) is shared by all channels, (batch, G, N) by each group."""
    t = t.float()
    if t.dim() == 2:
        return t[:, None, :]
    return t.repeat_interleave(dim // t.shape[1], dim=1)


def selective_state_update_ref(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """Advance ``state`` by one token and return the output.

    Args:
        state: (batch, dim, N) SSM state, updated in place.
        x: (batch, dim) input of this step.
        dt: (batch, dim) step size before ``dt_bias``/softplus.
        A: (dim, N) real state matrix.
        B, C: (batch, N) or grouped (batch, G, N).
        D: (dim,) optional skip. z: (batch, dim) optional gate. dt_bias: (dim,) optional.

    Returns:
        out (batch, dim) in x's dtype.
    """
    _, dim, _ = check_state_update_inputs(state, x, dt, A, B, C, D, z, dt_bias)
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = F.softplus(dt)
    x_f = x.float()
    dA = torch.exp(dt[..., None] * A.float())
    new_state = state.float() * dA + dt[..., None] * _per_channel_step(B, dim) * x_f[..., None]
    state.copy_(new_state)
    out = (new_state * _per_channel_step(C, dim)).sum(-1)
    if D is not None:
        out = out + x_f * D.float()
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(x.dtype)
