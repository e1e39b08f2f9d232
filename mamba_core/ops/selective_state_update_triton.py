"""One decoding step of the selective SSM in Triton: the state is read, advanced and written back in one pass.

Semantics are mamba_ssm's ``selective_state_update`` (see ``selective_state_update_ref``) for a (batch, dim, N)
state: ``dt' = softplus(dt + dt_bias)``, ``state = exp(dt' A) * state + dt' B x``, ``out = <state, C> + D x``, times
``silu(z)``. Each program owns one batch element and ``BLOCK_D`` channels; the cost per token is one read and one
write of the state, independent of the position in the sequence.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .checks import check_state_update_inputs, check_triton_tensors
from .selective_scan_triton_common import cdiv, next_power_of_2


@triton.jit
def _state_update_kernel(
    state_ptr, x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
    dim, dstate, group_size,
    s_sb, s_sd, s_sn, s_xb, s_xd, s_tb, s_td, s_zb, s_zd, s_ob, s_od, s_Ad, s_An,
    s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, NP)
    dmask = d < dim
    nmask = n < dstate
    dn_mask = dmask[:, None] & nmask[None, :]
    grp = d // group_size  # per channel: a block may straddle groups

    s_offs = pid_b * s_sb + d[:, None] * s_sd + n[None, :] * s_sn
    state = tl.load(state_ptr + s_offs, mask=dn_mask, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + pid_b * s_xb + d * s_xd, mask=dmask, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + pid_b * s_tb + d * s_td, mask=dmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt += tl.load(bias_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    if SOFTPLUS:
        dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(tl.minimum(dt, 20.0))), dt)
    A = tl.load(A_ptr + d[:, None] * s_Ad + n[None, :] * s_An, mask=dn_mask, other=0.0).to(tl.float32)
    bc_offs = grp[:, None] * s_Bg + n[None, :] * s_Bn
    B = tl.load(B_ptr + pid_b * s_Bb + bc_offs, mask=dn_mask, other=0.0).to(tl.float32)
    C = tl.load(C_ptr + pid_b * s_Cb + grp[:, None] * s_Cg + n[None, :] * s_Cn, mask=dn_mask, other=0.0)
    state = tl.exp(dt[:, None] * A) * state + (dt * x)[:, None] * B
    tl.store(state_ptr + s_offs, state, mask=dn_mask)
    out = tl.sum(state * C.to(tl.float32), axis=1)
    if HAS_D:
        out += x * tl.load(D_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_ptr + pid_b * s_zb + d * s_zd, mask=dmask, other=0.0).to(tl.float32)
        out = out * z * tl.sigmoid(z)
    tl.store(out_ptr + pid_b * s_ob + d * s_od, out, mask=dmask)


def selective_state_update_triton(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                                  *, _block_d=None):
    """Advance ``state`` (batch, dim, N) in place by one token and return out (batch, dim) in x's dtype.

    x, dt, z: (batch, dim); A: (dim, N); B, C: (batch, N) or grouped (batch, G, N); D, dt_bias: (dim,).
    """
    named = {"state": state, "x": x, "dt": dt, "A": A, "B": B, "C": C, "D": D, "z": z, "dt_bias": dt_bias}
    check_triton_tensors(named, "state update")
    batch, dim, dstate = check_state_update_inputs(state, x, dt, A, B, C, D, z, dt_bias)
    Bg = B if B.dim() == 3 else B.unsqueeze(1)
    Cg = C if C.dim() == 3 else C.unsqueeze(1)
    if Bg.shape[1] != Cg.shape[1]:
        raise ValueError(f"B has {Bg.shape[1]} groups and C has {Cg.shape[1]}; they must match")
    group_size = dim // Bg.shape[1]
    np2 = max(2, next_power_of_2(dstate))
    block_d = _block_d or max(1, min(64, 2048 // np2))
    while block_d > 4 and batch * cdiv(dim, block_d) < 512:  # enough programs for small batches
        block_d //= 2
    out = torch.empty(batch, dim, device=x.device, dtype=x.dtype)
    zz = z if z is not None else x
    grid = (batch, cdiv(dim, block_d))
    _state_update_kernel[grid](
        state, x, dt, A, Bg, Cg, D if D is not None else A, zz, dt_bias if dt_bias is not None else A, out,
        dim, dstate, group_size,
        *state.stride(), *x.stride(), *dt.stride(), *zz.stride(), *out.stride(), *A.stride(),
        *Bg.stride(), *Cg.stride(),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus),
        BLOCK_D=block_d, NP=np2, num_warps=4 if block_d * np2 >= 1024 else 2,
    )
    return out
