"""Fused selective scan in Triton: forward and backward in one kernel each, O(batch*dim*L) memory.

Semantics are mamba_ssm's ``selective_scan_fn`` (see ``selective_scan_ref``). Each program owns one batch element
and ``BLOCK_D`` channels and walks the sequence in chunks of ``CHUNK`` steps:

* forward: u, delta, B, C, z are read once; bias, softplus, ``exp2(delta * A*log2(e))`` and the recurrence
  ``h_t = a_t h_{t-1} + b_t`` happen on chip (``tl.associative_scan`` inside a chunk, the fp32 state carried from chunk
  to chunk in registers). Only y and the state at the end of every chunk, (batch, dim, L/CHUNK, N) fp32, reach HBM;
  the (batch, dim, L, N) state tensor never exists.
* backward: chunks are walked in reverse. The states of a chunk are recomputed from the saved boundary state, the
  adjoint ``g_t = C_t dy_t + a_{t+1} g_{t+1}`` comes from a reverse ``tl.associative_scan`` with the adjoint carried
  across chunks. Per-channel reductions (dA, dD, d delta_bias, fixed dB/dC) are per-program partials summed over the
  batch in torch; input-dependent dB/dC are summed over the program's channels and added with fp32 atomics.

The reverse scan needs ``a_{t+1}`` next to ``g_t``; rather than shuffling registers, the backward reads delta shifted
by one step (a cached load) and evaluates the second exponential.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .checks import KERNEL_DTYPES, check_scan_inputs, check_triton_tensors, triton_interpreting
from .selective_scan_triton_common import cdiv, channel_bias_and_d, next_power_of_2, softplus_fp32
from .selective_scan_triton_lanes import (
    _thread_lanes_fwd_kernel,
    _thread_lanes_pf_fwd_kernel,
    _thread_lanes_seg_fwd_kernel,
)
from .selective_scan_triton_thread import MAX_THREAD_DSTATE, _thread_fwd_kernel
from .selective_scan_triton_thread_bwd import _thread_bwd_carry_kernel, _thread_bwd_kernel

LOG2E = math.log2(math.e)
MAX_DSTATE = 256


@triton.jit
def _linear_combine(a1, b1, a2, b2):
    # Composition of h -> a1*h + b1 followed by h -> a2*h + b2; with reverse=True Triton passes (later, earlier),
    # which yields g_t = a_t g_{t+1} + b_t.
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _load_delta(delta_ptr, offs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """delta after bias and softplus, zero where masked (a zero step leaves the state unchanged)."""
    dt = tl.load(delta_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias[:, None]
    if SOFTPLUS:
        dt = softplus_fp32(dt)
    return tl.where(mask, dt, 0.0)


@triton.jit
def _scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr,
    dim, L, n_chunks, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, NP)
    t_loc = tl.arange(0, CHUNK)
    dmask = d < dim
    nmask = n < dstate
    dn_mask = dmask[:, None] & nmask[None, :]
    grp = (pid_d * BLOCK_D) // group_size

    A = tl.load(A_ptr + d[:, None] * s_Ad + n[None, :] * s_An, mask=dn_mask, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634  # exp(x) = exp2(x * log2(e))
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)
    if not B_VAR:
        Bfix = tl.load(B_ptr + d[:, None] * s_Bb + n[None, :] * s_Bn, mask=dn_mask, other=0.0).to(tl.float32)
    if not C_VAR:
        Cfix = tl.load(C_ptr + d[:, None] * s_Cb + n[None, :] * s_Cn, mask=dn_mask, other=0.0).to(tl.float32)

    h = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
    c = 0
    while c < n_chunks:  # a while loop: the interpreter (numpy 2.4) cannot range() over a runtime bound
        t = c * CHUNK + t_loc
        tmask = t < L
        m2 = dmask[:, None] & tmask[None, :]
        u = tl.load(u_ptr + pid_b * s_ub + d[:, None] * s_ud + t[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
        dt = _load_delta(delta_ptr + pid_b * s_db, d[:, None] * s_dd + t[None, :] * s_dl, m2, bias, HAS_BIAS, SOFTPLUS)
        a = tl.exp2(dt[:, None, :] * A2[:, :, None])
        dtu = dt * u
        if B_VAR:
            Bt = tl.load(B_ptr + pid_b * s_Bb + grp * s_Bg + n[:, None] * s_Bn + t[None, :] * s_Bl,
                         mask=nmask[:, None] & tmask[None, :], other=0.0).to(tl.float32)
            b = dtu[:, None, :] * Bt[None, :, :]
        else:
            b = dtu[:, None, :] * Bfix[:, :, None]
        acum, bcum = tl.associative_scan((a, b), 2, _linear_combine)
        hs = acum * h[:, :, None] + bcum
        if C_VAR:
            Ct = tl.load(C_ptr + pid_b * s_Cb + grp * s_Cg + n[:, None] * s_Cn + t[None, :] * s_Cl,
                         mask=nmask[:, None] & tmask[None, :], other=0.0).to(tl.float32)
            y = tl.sum(hs * Ct[None, :, :], axis=1)
        else:
            y = tl.sum(hs * Cfix[:, :, None], axis=1)
        h = tl.sum(tl.where((t_loc == CHUNK - 1)[None, None, :], hs, 0.0), axis=2)
        st_offs = ((pid_b * dim + d[:, None]) * n_chunks + c) * NP + n[None, :]
        tl.store(states_ptr + st_offs, h, mask=dn_mask)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zz = tl.load(z_ptr + pid_b * s_zb + d[:, None] * s_zd + t[None, :] * s_zl, mask=m2, other=0.0)
            zz = zz.to(tl.float32)
            y = y * zz * tl.sigmoid(zz)
        tl.store(out_ptr + pid_b * s_ob + d[:, None] * s_od + t[None, :] * s_ol, y, mask=m2)
        c += 1


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr, dout_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, n_chunks, group_size, dstate, n_groups,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
):
    # du, ddelta, dz, dout are contiguous (batch, dim, L); dA/dD/dbias and fixed dB/dC are per-batch partials
    # (batch, dim, NP)/(batch, dim); variable dB/dC are fp32 (batch, G, NP, L) accumulated with atomics.
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, NP)
    t_loc = tl.arange(0, CHUNK)
    dmask = d < dim
    nmask = n < dstate
    dn_mask = dmask[:, None] & nmask[None, :]
    grp = (pid_d * BLOCK_D) // group_size

    A = tl.load(A_ptr + d[:, None] * s_Ad + n[None, :] * s_An, mask=dn_mask, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)
    if not B_VAR:
        Bfix = tl.load(B_ptr + d[:, None] * s_Bb + n[None, :] * s_Bn, mask=dn_mask, other=0.0).to(tl.float32)
        dB_acc = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
    if not C_VAR:
        Cfix = tl.load(C_ptr + d[:, None] * s_Cb + n[None, :] * s_Cn, mask=dn_mask, other=0.0).to(tl.float32)
        dC_acc = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
    dA_acc = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_carry = tl.zeros([BLOCK_D, NP], dtype=tl.float32)  # a_T * g_T from the chunk after this one
    bdl = pid_b * dim * L + d[:, None] * L  # offsets into contiguous (batch, dim, L) tensors

    c = n_chunks - 1
    while c >= 0:
        t = c * CHUNK + t_loc
        tmask = t < L
        m2 = dmask[:, None] & tmask[None, :]
        u = tl.load(u_ptr + pid_b * s_ub + d[:, None] * s_ud + t[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
        d_offs = d[:, None] * s_dd + t[None, :] * s_dl
        dt_raw = tl.load(delta_ptr + pid_b * s_db + d_offs, mask=m2, other=0.0).to(tl.float32)
        dt_pre = dt_raw
        if HAS_BIAS:
            dt_pre = dt_raw + bias[:, None]
        dt = dt_pre
        if SOFTPLUS:
            dt = softplus_fp32(dt_pre)
        dt = tl.where(m2, dt, 0.0)
        next_mask = dmask[:, None] & ((t_loc < CHUNK - 1) & (t + 1 < L))[None, :]
        dt_next = _load_delta(delta_ptr + pid_b * s_db, d_offs + s_dl, next_mask, bias, HAS_BIAS, SOFTPLUS)
        dout = tl.load(dout_ptr + bdl + t[None, :], mask=m2, other=0.0).to(tl.float32)

        a = tl.exp2(dt[:, None, :] * A2[:, :, None])
        dtu = dt * u
        if B_VAR:
            Bt = tl.load(B_ptr + pid_b * s_Bb + grp * s_Bg + n[:, None] * s_Bn + t[None, :] * s_Bl,
                         mask=nmask[:, None] & tmask[None, :], other=0.0).to(tl.float32)[None, :, :]
        else:
            Bt = Bfix[:, :, None]
        if C_VAR:
            Ct = tl.load(C_ptr + pid_b * s_Cb + grp * s_Cg + n[:, None] * s_Cn + t[None, :] * s_Cl,
                         mask=nmask[:, None] & tmask[None, :], other=0.0).to(tl.float32)[None, :, :]
        else:
            Ct = Cfix[:, :, None]
        b = dtu[:, None, :] * Bt
        st_offs = ((pid_b * dim + d[:, None]) * n_chunks + (c - 1)) * NP + n[None, :]
        h0 = tl.load(states_ptr + st_offs, mask=dn_mask & (c > 0), other=0.0)
        acum, bcum = tl.associative_scan((a, b), 2, _linear_combine)
        h = acum * h0[:, :, None] + bcum

        if HAS_Z:
            zz = tl.load(z_ptr + pid_b * s_zb + d[:, None] * s_zd + t[None, :] * s_zl, mask=m2, other=0.0)
            zz = zz.to(tl.float32)
            y = tl.sum(h * Ct, axis=1)
            if HAS_D:
                y += Dv[:, None] * u
            sig = tl.sigmoid(zz)
            dz = dout * y * sig * (1.0 + zz * (1.0 - sig))
            tl.store(dz_ptr + bdl + t[None, :], dz, mask=m2)
            dy = dout * zz * sig
        else:
            dy = dout
        if HAS_D:
            dD_acc += tl.sum(dy * u, axis=1)

        dC_full = h * dy[:, None, :]
        if C_VAR:
            dC_offs = ((pid_b * n_groups + grp) * NP + n[:, None]) * L + t[None, :]
            tl.atomic_add(dC_ptr + dC_offs, tl.sum(dC_full, axis=0), mask=nmask[:, None] & tmask[None, :],
                          sem="relaxed")
        else:
            dC_acc += tl.sum(dC_full, axis=2)

        alpha = tl.exp2(dt_next[:, None, :] * A2[:, :, None])
        ga, gb = tl.associative_scan((alpha, Ct * dy[:, None, :]), 2, _linear_combine, reverse=True)
        g = gb + ga * g_carry[:, :, None]
        g_carry = tl.sum(tl.where((t_loc == 0)[None, None, :], a * g, 0.0), axis=2)

        g_ah = g * (h - b)  # g_t * a_t * h_{t-1}
        dA_acc += tl.sum(g_ah * dt[:, None, :], axis=2)
        gB = tl.sum(g * Bt, axis=1)
        ddt = u * gB + tl.sum(g_ah * A[:, :, None], axis=1)
        du = dt * gB
        if HAS_D:
            du += Dv[:, None] * dy
        dB_full = g * dtu[:, None, :]
        if B_VAR:
            dB_offs = ((pid_b * n_groups + grp) * NP + n[:, None]) * L + t[None, :]
            tl.atomic_add(dB_ptr + dB_offs, tl.sum(dB_full, axis=0), mask=nmask[:, None] & tmask[None, :],
                          sem="relaxed")
        else:
            dB_acc += tl.sum(dB_full, axis=2)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(dt_pre)
        ddt = tl.where(m2, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=1)
        tl.store(du_ptr + bdl + t[None, :], du, mask=m2)
        tl.store(ddelta_ptr + bdl + t[None, :], ddt, mask=m2)
        c -= 1

    part_dn = (pid_b * dim + d[:, None]) * NP + n[None, :]
    tl.store(dA_ptr + part_dn, dA_acc, mask=dn_mask)
    if not B_VAR:
        tl.store(dB_ptr + part_dn, dB_acc, mask=dn_mask)
    if not C_VAR:
        tl.store(dC_ptr + part_dn, dC_acc, mask=dn_mask)
    if HAS_D:
        tl.store(dD_ptr + pid_b * dim + d, dD_acc, mask=dmask)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid_b * dim + d, dbias_acc, mask=dmask)


@triton.jit
def _seq_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr,
    dim, L, n_chunks, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
):
    """Step-by-step recurrence on a (NP, BLOCK_D) fp32 state tile, channels along the fast axis."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, NP)
    dmask = d < dim
    nmask = n < dstate
    nd_mask = nmask[:, None] & dmask[None, :]
    grp = (pid_d * BLOCK_D) // group_size

    A2 = tl.load(A_ptr + d[None, :] * s_Ad + n[:, None] * s_An, mask=nd_mask, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)
    if not B_VAR:
        Bfix = tl.load(B_ptr + d[None, :] * s_Bb + n[:, None] * s_Bn, mask=nd_mask, other=0.0).to(tl.float32)
    if not C_VAR:
        Cfix = tl.load(C_ptr + d[None, :] * s_Cb + n[:, None] * s_Cn, mask=nd_mask, other=0.0).to(tl.float32)
    u_row = u_ptr + pid_b * s_ub + d * s_ud
    dt_row = delta_ptr + pid_b * s_db + d * s_dd
    z_row = z_ptr + pid_b * s_zb + d * s_zd
    o_row = out_ptr + pid_b * s_ob + d * s_od
    B_col = B_ptr + pid_b * s_Bb + grp * s_Bg + n * s_Bn
    C_col = C_ptr + pid_b * s_Cb + grp * s_Cg + n * s_Cn

    h = tl.zeros([NP, BLOCK_D], dtype=tl.float32)
    c = 0
    while c < n_chunks:
        for i in range(CHUNK):  # not unrolled: an unrolled chunk compiles for minutes
            t = c * CHUNK + i
            m = dmask & (t < L)
            u = tl.load(u_row + t * s_ul, mask=m, other=0.0).to(tl.float32)
            dt = tl.load(dt_row + t * s_dl, mask=m, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt += bias
            if SOFTPLUS:
                dt = softplus_fp32(dt)
            dt = tl.where(m, dt, 0.0)
            a = tl.exp2(dt[None, :] * A2)
            if B_VAR:
                Bt = tl.load(B_col + t * s_Bl, mask=nmask & (t < L), other=0.0).to(tl.float32)[:, None]
            else:
                Bt = Bfix
            h = a * h + (dt * u)[None, :] * Bt
            if C_VAR:
                Ct = tl.load(C_col + t * s_Cl, mask=nmask & (t < L), other=0.0).to(tl.float32)[:, None]
            else:
                Ct = Cfix
            y = tl.sum(h * Ct, axis=0)
            if HAS_D:
                y += Dv * u
            if HAS_Z:
                zz = tl.load(z_row + t * s_zl, mask=m, other=0.0).to(tl.float32)
                y = y * zz * tl.sigmoid(zz)
            tl.store(o_row + t * s_ol, y, mask=m)
        st_offs = ((pid_b * dim + d[None, :]) * n_chunks + c) * NP + n[:, None]
        tl.store(states_ptr + st_offs, h, mask=nd_mask)
        c += 1


@triton.jit
def _seq_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr, dout_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, n_chunks, group_size, dstate, n_groups,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
):
    """Per chunk, last to first: recompute the states step by step into a private scratch (L2-resident), then walk
    back through the chunk with the adjoint g_t = C_t dy_t + a_{t+1} g_{t+1} carried in registers."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, NP)
    dmask = d < dim
    nmask = n < dstate
    nd_mask = nmask[:, None] & dmask[None, :]
    grp = (pid_d * BLOCK_D) // group_size

    A = tl.load(A_ptr + d[None, :] * s_Ad + n[:, None] * s_An, mask=nd_mask, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)
    if not B_VAR:
        Bfix = tl.load(B_ptr + d[None, :] * s_Bb + n[:, None] * s_Bn, mask=nd_mask, other=0.0).to(tl.float32)
        dB_acc = tl.zeros([NP, BLOCK_D], dtype=tl.float32)
    if not C_VAR:
        Cfix = tl.load(C_ptr + d[None, :] * s_Cb + n[:, None] * s_Cn, mask=nd_mask, other=0.0).to(tl.float32)
        dC_acc = tl.zeros([NP, BLOCK_D], dtype=tl.float32)
    dA_acc = tl.zeros([NP, BLOCK_D], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_carry = tl.zeros([NP, BLOCK_D], dtype=tl.float32)  # a_{t+1} * g_{t+1}

    u_row = u_ptr + pid_b * s_ub + d * s_ud
    dt_row = delta_ptr + pid_b * s_db + d * s_dd
    z_row = z_ptr + pid_b * s_zb + d * s_zd
    bdl = pid_b * dim * L + d * L  # contiguous (batch, dim, L) gradients and dout
    B_col = B_ptr + pid_b * s_Bb + grp * s_Bg + n * s_Bn
    C_col = C_ptr + pid_b * s_Cb + grp * s_Cg + n * s_Cn
    dB_col = dB_ptr + ((pid_b * n_groups + grp) * NP + n) * L
    dC_col = dC_ptr + ((pid_b * n_groups + grp) * NP + n) * L
    n_dblocks = tl.num_programs(1)
    scr = (scratch_ptr + (pid_b * n_dblocks + pid_d) * (CHUNK * NP * BLOCK_D)
           + n[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :])

    c = n_chunks - 1
    while c >= 0:
        st_offs = ((pid_b * dim + d[None, :]) * n_chunks + (c - 1)) * NP + n[:, None]
        h0 = tl.load(states_ptr + st_offs, mask=nd_mask & (c > 0), other=0.0)
        h = h0
        for i in range(CHUNK):  # not unrolled: an unrolled chunk compiles for minutes
            t = c * CHUNK + i
            m = dmask & (t < L)
            u = tl.load(u_row + t * s_ul, mask=m, other=0.0).to(tl.float32)
            dt = tl.load(dt_row + t * s_dl, mask=m, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt += bias
            if SOFTPLUS:
                dt = softplus_fp32(dt)
            dt = tl.where(m, dt, 0.0)
            if B_VAR:
                Bt = tl.load(B_col + t * s_Bl, mask=nmask & (t < L), other=0.0).to(tl.float32)[:, None]
            else:
                Bt = Bfix
            h = tl.exp2(dt[None, :] * A2) * h + (dt * u)[None, :] * Bt
            tl.store(scr + i * (NP * BLOCK_D), h)
        tl.debug_barrier()
        h_t = h
        for j in range(CHUNK):
            i = CHUNK - 1 - j
            t = c * CHUNK + i
            m = dmask & (t < L)
            h_prev = tl.load(scr + (i - 1) * (NP * BLOCK_D), mask=(i > 0) & nd_mask, other=0.0)
            h_prev = tl.where(i > 0, h_prev, h0)
            u = tl.load(u_row + t * s_ul, mask=m, other=0.0).to(tl.float32)
            dt_pre = tl.load(dt_row + t * s_dl, mask=m, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt_pre += bias
            dt = dt_pre
            if SOFTPLUS:
                dt = softplus_fp32(dt_pre)
            dt = tl.where(m, dt, 0.0)
            dout = tl.load(dout_ptr + bdl + t, mask=m, other=0.0).to(tl.float32)
            if B_VAR:
                Bt = tl.load(B_col + t * s_Bl, mask=nmask & (t < L), other=0.0).to(tl.float32)[:, None]
            else:
                Bt = Bfix
            if C_VAR:
                Ct = tl.load(C_col + t * s_Cl, mask=nmask & (t < L), other=0.0).to(tl.float32)[:, None]
            else:
                Ct = Cfix
            a = tl.exp2(dt[None, :] * A2)
            if HAS_Z:
                zz = tl.load(z_row + t * s_zl, mask=m, other=0.0).to(tl.float32)
                y = tl.sum(h_t * Ct, axis=0)
                if HAS_D:
                    y += Dv * u
                sig = tl.sigmoid(zz)
                tl.store(dz_ptr + bdl + t, dout * y * sig * (1.0 + zz * (1.0 - sig)), mask=m)
                dy = dout * zz * sig
            else:
                dy = dout
            if HAS_D:
                dD_acc += dy * u
            if C_VAR:
                tl.atomic_add(dC_col + t, tl.sum(h_t * dy[None, :], axis=1), mask=nmask & (t < L), sem="relaxed")
            else:
                dC_acc += h_t * dy[None, :]
            g = g_carry + Ct * dy[None, :]
            gh = g * a * h_prev
            dA_acc += gh * dt[None, :]
            gB = tl.sum(g * Bt, axis=0)
            ddt = gB * u + tl.sum(gh * A, axis=0)
            du = gB * dt
            if HAS_D:
                du += Dv * dy
            if B_VAR:
                tl.atomic_add(dB_col + t, tl.sum(g * (dt * u)[None, :], axis=1), mask=nmask & (t < L),
                              sem="relaxed")
            else:
                dB_acc += g * (dt * u)[None, :]
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(dt_pre)
            ddt = tl.where(m, ddt, 0.0)
            dbias_acc += ddt
            tl.store(du_ptr + bdl + t, du, mask=m)
            tl.store(ddelta_ptr + bdl + t, ddt, mask=m)
            g_carry = a * g
            h_t = h_prev
        tl.debug_barrier()
        c -= 1

    part = (pid_b * dim + d[None, :]) * NP + n[:, None]
    tl.store(dA_ptr + part, dA_acc, mask=nd_mask)
    if not B_VAR:
        tl.store(dB_ptr + part, dB_acc, mask=nd_mask)
    if not C_VAR:
        tl.store(dC_ptr + part, dC_acc, mask=nd_mask)
    if HAS_D:
        tl.store(dD_ptr + pid_b * dim + d, dD_acc, mask=dmask)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid_b * dim + d, dbias_acc, mask=dmask)


def _check_kernel_inputs(u, delta, A, B, C, D, z, delta_bias):
    """Checks on top of ``check_scan_inputs``: devices the kernel can run on and dtypes it handles."""
    named = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias}
    check_triton_tensors(named, "selective scan", dtypes=("u", "delta", "z", "B", "C"))
    if A.is_complex() or A.dtype != torch.float32:
        raise ValueError(f"A must be a real fp32 tensor, got dtype {A.dtype}")
    for name in ("D", "delta_bias"):
        t = named[name]
        if t is not None and t.dtype not in KERNEL_DTYPES:
            raise ValueError(f"{name} has dtype {t.dtype}; expected fp32")
    batch, dim, seqlen, dstate = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    if dstate > MAX_DSTATE:
        raise ValueError(f"A has N={dstate} states; the Triton selective scan supports N <= {MAX_DSTATE}")
    if seqlen == 0:
        raise ValueError("u has length L=0; the sequence must have at least one step")
    return batch, dim, seqlen, dstate


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return _cuda_sms(device.index if device.index is not None else torch.cuda.current_device())
    return 1


@functools.cache
def _cuda_sms(index: int) -> int:
    """SM count of a CUDA device (``get_device_properties`` costs ~15 us a call, twice per forward)."""
    return torch.cuda.get_device_properties(index).multi_processor_count


class ThreadFwdVariant(NamedTuple):
    """A configuration of the lanes thread forward (``_thread_lanes_fwd_kernel`` and its latency-hiding forms)."""

    lanes: int  # S lanes per channel
    poly: int  # states of a lane's NP/S whose exponential runs on the FMA pipe (``_exp2_fma``)
    fp32_bc: bool  # B/C tiles in fp32
    prefetch: bool = False  # ``_thread_lanes_pf_fwd_kernel``: a tile's loads one tile ahead, into registers
    stages: int = 0  # > 1: ``_thread_lanes_seg_fwd_kernel``, its tile loop pipelined by Triton over this many
    segments: bool = False  # thin inputs / ``_n_seg`` > 1: sequence segments (``_thread_lanes_seg_fwd_kernel``)


# Variants of the thread forward, each paired with the scan backward: name -> ThreadFwdVariant.
# "auto" uses thread_split2_stages3_seg (see KERNEL_PAIRS); ``benchmarks/scan.py --variants`` / ``--ab`` time them.
# They run the whole sequence in one program per (batch, 32/S channels); with fewer than
# THREAD_VARIANT_MIN_WARPS_PER_SM warps per SM, an explicit ``_n_seg`` > 1 or N > 16 they fall back to the "thread"
# forward (which splits the sequence), except that a ``segments`` variant splits it itself, into the "thread"
# forward's segment count (``_pick_thread_config``; N <= 16 still). fp32 B/C tiles: the re-laid copy is made anyway
# and is small (batch*N*L), and in sm_90 SASS the per-lane bf16 -> fp32 unpacking of the broadcast B/C rows is 420
# of the 1553 instructions of an 8-step tile.
# The _pf / _stages3 / _stages4 forms hide load latency (~2 warps per SM scheduler at (8, 2048, 2048, 16)): see
# ``_thread_lanes_pf_fwd_kernel`` and ``_thread_lanes_seg_fwd_kernel``. H100, bf16, (8, 2048, 2048, 16) forward
# (`scan.py --ab`, round-robin; run 10 in benchmarks/README.md) at 8-step tiles: thread_split2_stages3_seg 0.318 ms,
# thread_split2_poly1_stages3(_seg) 0.325, poly2 0.332, 4 lanes per channel 0.384, 2 channels per lane (one warp per
# SM scheduler) 0.409; with the accurate softplus/SiLU (MAMBA_CORE_SCAN_EXACT_MATH=1) 0.330 / 0.339; then 16-step tiles
# (PIPELINED_TILE) 0.290; pipeline depth (run 12, same harness): 4 stages 0.290 (1.688 ms at (1, 65536, 2048, 16)
# against 1.679), 2 stages 0.308 (1.772). On thin inputs the segmented form beats the "thread" fallback:
# (1, 65536, 2048, 16) 1.88 against 2.65 ms, (1, 1048576, 256, 16) 4.4 against 5.7 (H200).
THREAD_VARIANTS = {name: ThreadFwdVariant(*v) for name, v in {
    "thread_lanes1_bf16bc": (1, 0, False), "thread_lanes1": (1, 0, True),
    "thread_poly1": (1, 1, True), "thread_poly4": (1, 4, True),
    "thread_split2": (2, 0, True), "thread_split2_poly1": (2, 1, True),
    "thread_split4": (4, 0, True), "thread_split4_poly1": (4, 1, True),
    "thread_split2_poly1_pf": (2, 1, True, True), "thread_split2_poly1_stages3": (2, 1, True, False, 3),
    "thread_split2_poly1_stages4": (2, 1, True, False, 4),
    "thread_split2_poly1_stages3_seg": (2, 1, True, False, 3, True),
    "thread_split2_stages3_seg": (2, 0, True, False, 3, True)}.items()}
THREAD_VARIANT_MIN_WARPS_PER_SM = 2
# Steps per unrolled tile of the pipelined forwards (``stages``): 16, for fewer tile starts (each waits on a softplus
# and exponential chain before its recurrence can run). H100, bf16 forward: (8, 2048, 2048, 16) 0.290 ms against
# 0.312 at 8 steps, (1, 65536, 2048, 16) 1.68 against 1.87 (`scan.py --ab`); 128 registers, 146 sm_90 instructions
# per channel-step against 154.5. 32 steps spill.
PIPELINED_TILE = 16


class ThreadBwdVariant(NamedTuple):
    """An opt-in configuration of the thread backward (``_thread_bwd_kernel``)."""

    bc_dot: bool  # variable dB/dC: channel sums by tensor-core products into per-program partials (no atomics)
    fp32_bc: bool  # B/C tiles in fp32 (no per-lane bf16 unpacking)
    poly: int = 0  # states per step whose exponentials run on the FMA pipe (``_exp2_fma``)
    n_seg: int | None = None  # sequence segments; None: ``_pick_thread_config``'s backward rule
    tile: int | None = None  # steps per unrolled tile; None: the thread backward's 2
    dot_cols: int = 0  # columns (tiles x steps) per product; 0: one product per tile
    lanes: int = 1  # lanes per channel, each with NP/lanes states (one-warp programs of 32/lanes channels)
    stages: int = 0  # > 0: full-tile loops as tl.range(num_stages=stages) (Triton software-pipelined loads)
    shuffle: bool = False  # bc_dot's channel sums by a transposing shuffle butterfly, exact fp32 (BC_DOT = 3),
    # where it fits: one lane per channel, 32-channel one-warp programs, variable B and C, 16 states
    atomic: bool = False  # with shuffle: the sums added to dB/dC by relaxed fp32 atomics (BC_DOT = 4), no per-program
    # partials to write, read and sum (less memory; the order of the adds, so the last bits, varies run to run)


# Variants of the thread backward, each paired with the default forward as _impl "bwd_<name>"; "auto" uses
# thread_shfl_g32_atomic_stages3 since run 12 (H100, bf16, fwd+bwd with 32-step chunks, `scan.py --ab --fb`, min of
# 7 rounds: (8, 2048, 2048, 16) 2.358 ms against 2.710 for thread_shfl_g32_stages3, (8, 2048, 8192, 16) 10.27 /
# 12.45, (1, 65536, 2048, 16) 12.65 / 14.87, (64, 1024, 1536, 16) 7.99 / 9.62): the butterfly's sums go straight
# into dB/dC by relaxed fp32 atomics, where the stored form writes per-program partials (1 GiB at (8, 2048, 8192)),
# then reads them back to sum them in torch. Under torch.use_deterministic_algorithms the stored form runs instead
# (``_backward``). Capping the registers (ptxas maxnreg) for more warps per SM is slower: 200 registers (176 B of
# spills) 3.10 ms, 168 (200 B, and exponentials recomputed) 3.23 ms at (8, 2048, 2048, 16) against 2.71 uncapped.
# Before, thread_shfl_g32_stages3 (run 11, H100, bf16, fwd+bwd with 32-step chunks, `scan.py --ab --fb`:
# (8, 2048, 2048, 16) 2.72 ms against 3.11 for thread_dot_stages3 at 64, (8, 2048, 8192, 16) 12.48 / 13.93,
# (1, 65536, 2048, 16) 14.85 / 16.36, (64, 1024, 1536, 16) 9.53 / 10.67; thread_shfl_stages3, its channel sums
# in one group of 16 states (255 registers against 244), 2.81 / 13.08 / 15.46 / 10.03): the shuffle butterfly
# replaces the product's bf16 hi/lo split, shared-memory transpose and HMMA, 1408 -> 987 sm_90 instructions per
# 2-step tile. Before, thread_dot_stages3 (H100, (8, 2048, 2048, 16) bf16 fwd+bwd with the pipelined forward:
# 3.21 ms against 3.78 for thread_dot, _stages4 3.23, thread_dot_split2 4.10, _split2_stages3 3.99;
# (1, 65536, 2048, 16): 16.98 against 17.67).
# `benchmarks/scan.py --bwd-variants` times them (H100, 2026-11-26: fwd+bwd at (8, 2048, 2048, 16) bf16,
# at the then CHUNK 16: thread_dot_seg1 4.02 ms, thread_dot / _g16 / _bf16bc 5.0 (3 segments), thread_dot_poly1 5.13,
# thread_seg 5.67, the scan backward 5.98; dropped since: 1-step tiles 6.76, software exp2 for 4 states 5.18, fp32
# B/C with atomics and shuffles 6.54), `--sass-bwd` counts their instructions.
# Why segments: the thread backward holds ~255 registers per lane, and one program per (batch, 32 channels) gives
# (8, 2048, 2048, 16) 512 one-warp programs, ~1 warp per SM scheduler; its ~1000 sm_90 thread instructions per
# channel-step would take ~1.2 ms issue-bound at that shape against 5.7 ms measured (H100, run 7): it waits on
# latency. Segments cost one light pass (``_thread_bwd_carry_kernel``, one exponential per element) over all but
# the last segment. The one-product-per-tile dB/dC sums keep 2*N*T values live through the state loop (more
# registers: the compiler recomputes exponentials); dot_cols=16 sums 16 columns at a time. thread_dot_split2 (slower,
# above) is the other way to more warps: 2 lanes per channel with N/2 states each (16-channel one-warp
# programs, twice as many), as the forward's thread_split2; it needs the products for variable dB/dC, so groups of
# fewer than 16 channels run it with one lane. thread_dot_stages3/4 (timed above) hide the load latency
# instead, as the default forward does: the full-tile loops of the chunk re-run and of the backward walk as
# tl.range(num_stages=3 or 4), whose loads (u, delta, z, dout, B/C blocks, the parked states) Triton issues as
# cp.async copies to shared memory one (two) tiles ahead; offline sm_90 (`--sass-bwd`): 866.5 instructions per
# channel-step against 862, no LDG left in those loops, spills 136 -> 8 bytes, 13.5 (16.3) KB shared memory;
# thread_dot_split2_stages3 the same on 2 lanes per channel (218 registers against 240, 1150 instructions).
THREAD_BWD_VARIANTS = {
    "thread_dot": ThreadBwdVariant(True, True), "thread_seg": ThreadBwdVariant(False, True),
    "thread_dot_g16": ThreadBwdVariant(True, True, dot_cols=16),
    "thread_dot_seg1": ThreadBwdVariant(True, True, n_seg=1), "thread_dot_poly1": ThreadBwdVariant(True, True, poly=1),
    "thread_dot_bf16bc": ThreadBwdVariant(True, False), "thread_dot_split2": ThreadBwdVariant(True, True, lanes=2),
    "thread_dot_stages3": ThreadBwdVariant(True, True, stages=3),
    "thread_dot_stages4": ThreadBwdVariant(True, True, stages=4),
    "thread_dot_split2_stages3": ThreadBwdVariant(True, True, lanes=2, stages=3),
    "thread_shfl_stages3": ThreadBwdVariant(True, True, stages=3, shuffle=True),
    "thread_shfl_g32_stages3": ThreadBwdVariant(True, True, dot_cols=32, stages=3, shuffle=True),
    "thread_shfl_g32_atomic_stages3": ThreadBwdVariant(True, True, dot_cols=32, stages=3, shuffle=True,
                                                       atomic=True)}
# Segments of the thread backward variants: none from THREAD_BWD_MIN_PROGRAMS_PER_SM one-warp programs per SM up,
# else about THREAD_BWD_WARPS_PER_SM per SM, each segment at least THREAD_BWD_MIN_SEG_CHUNKS chunks long. H100,
# fwd+bwd ms at CHUNK 64 (benchmarks/README.md, --bwd-sweep): (8, 2048, 2048, 16), 3.9 programs per SM: 4.01
# unsplit, 4.49 at 2 segments; (2, 2048, 2048, 16): 3.06 unsplit, 1.36 at 4, 1.45 at 8; (1, 65536, 2048, 16):
# 21.4 at 17, 17.8 at 33, 19.7 at 66; (1, 1048576, 256, 16): 37.9 at 132, 36.9 at 264, 40.0 at 528.
THREAD_BWD_MIN_PROGRAMS_PER_SM = 3
THREAD_BWD_WARPS_PER_SM = 16
THREAD_BWD_MIN_SEG_CHUNKS = 8
IMPLS = ("auto", "thread", "thread_scan", "seq", "scan", *THREAD_VARIANTS,
         *(f"bwd_{name}" for name in THREAD_BWD_VARIANTS))
# (forward, backward) kernels per implementation choice; "auto" pairs the fastest of each (benchmarks/README.md,
# H100 2026-11-26: `scan.py --ab` / `--variants` for the forward (see above; before: thread_split2_poly1_stages3
# 0.342 ms in `--bench`, _pf 0.468, thread_split2_poly1 0.636, "thread" 0.935); `--bwd-variants` / `--bwd-sweep` for
# the backward). Thread kernels (N states per lane) fall back to "seq" forward and "scan" backward for N > 16.
KERNEL_PAIRS = {"auto": ("thread_split2_stages3_seg", "thread_shfl_g32_atomic_stages3"),
                "thread": ("thread", "thread"),
                "thread_scan": ("thread", "scan"), "seq": ("seq", "seq"), "scan": ("scan", "scan"),
                **{name: (name, "scan") for name in THREAD_VARIANTS}}
KERNEL_PAIRS.update({f"bwd_{name}": (KERNEL_PAIRS["auto"][0], name) for name in THREAD_BWD_VARIANTS})
# Steps per saved state of the thread forwards: 64, fastest for a forward alone (0.69 ms against 0.77 at 32 and 0.97
# at 16, H100 run 7) and with the thread_dot backward (fwd+bwd 4.01 ms against 4.05 at 16, H100 2026-11-26
# --bwd-sweep). Paired with the scan backward they save every 16 steps when gradients are needed, its fastest
# (5.3 ms against 6.2 at 32, H100 run 7).
THREAD_CHUNK = 64
SCAN_BWD_CHUNK = 16
# Steps per saved state when a thread forward's states go to a thread backward: 32. Its scratch (the state at every
# tile start of a chunk) halves, and stays in L2. H100, bf16, fwd+bwd with thread_shfl_g32_stages3 (`scan.py --ab
# --fb`): (8, 2048, 2048, 16) 2.72 ms against 2.89 at 64, (8, 2048, 8192, 16) 12.48 / 12.56, (1, 65536, 2048, 16)
# 14.85 / 15.08, (64, 1024, 1536, 16) 9.53 / 9.69.
THREAD_BWD_CHUNK = 32
# The thread forward runs one program per (batch, 32 channels). With fewer than one warp per SM sub-partition
# (4 per SM) it splits the sequence into segments (an extra pass over all but the last one) for about 16 warps per
# SM. H100, bf16 (benchmarks/README.md run 6): (1, 65536, 2048, 16) 21.9 ms unsplit, 3.8 ms at 16-32 segments;
# (1, 1048576, 256, 16) 10.2 ms at 256; (8, 2048, 2048, 16) is best unsplit (0.90 vs 0.93 ms with 2).
THREAD_MIN_PROGRAMS_PER_SM = 4
THREAD_SPLIT_PROGRAMS_PER_SM = 16
# {(impl, "fwd"|"bwd"): (block_d, chunk, num_warps)} for N <= 16, e.g. set by ``benchmarks/scan.py --bwd-sweep``;
# ("thread", "fwd"|"bwd") may hold a 4th and 5th entry: tile steps and segment count (None: the default).
OVERRIDES: dict = {}


def _pick_thread_config(batch, dim, seqlen, group_size, device, block_d=None, chunk=None, num_warps=None, tile=None,
                        n_seg=None, backward=False):
    """(BLOCK_D, CHUNK, num_warps, T, n_seg) for the thread-per-channel kernels; explicit values win."""
    tuned = OVERRIDES.get(("thread", "bwd" if backward else "fwd"), ())
    tuned = tuple(tuned) + (None,) * (5 - len(tuned))
    block_d = block_d or tuned[0] or 32
    chunk = chunk or tuned[1] or THREAD_CHUNK
    num_warps = num_warps or tuned[2]
    tile = min(tile or tuned[3] or (2 if backward else 8), chunk)
    if group_size < dim and group_size % block_d != 0:  # channels of a program share one group
        block_d = math.gcd(block_d, group_size & -group_size)
    num_warps = num_warps or max(1, block_d // 32)
    if n_seg is None:
        n_seg = tuned[4]
    if n_seg is None:
        programs, sms = batch * cdiv(dim, block_d), _num_sms(device)
        if not backward:
            n_seg = 1 if programs >= THREAD_MIN_PROGRAMS_PER_SM * sms else cdiv(
                THREAD_SPLIT_PROGRAMS_PER_SM * sms, programs)
        elif programs >= THREAD_BWD_MIN_PROGRAMS_PER_SM * sms:
            n_seg = 1
        else:
            n_seg = min(cdiv(THREAD_BWD_WARPS_PER_SM * sms, programs),
                        cdiv(seqlen, chunk) // THREAD_BWD_MIN_SEG_CHUNKS)
    return block_d, chunk, num_warps, tile, max(1, n_seg)


def _pick_config(impl, batch, dim, seqlen, np2, group_size, device, block_d=None, chunk=None, num_warps=None,
                 backward=False):
    """(BLOCK_D, CHUNK, num_warps) for a problem; explicit values (tests, tuning) win.

    Defaults come from H100 timings at (8, 2048, 2048, 16) bf16 (benchmarks/README.md): "seq" forward 16 channels
    per one-warp program; "scan" backward 2 channels x 16 steps per program, 2 warps (5.3 ms, run 7).
    """
    tuned = OVERRIDES.get((impl, "bwd" if backward else "fwd")) if np2 <= 16 else None
    if tuned is not None:
        block_d = block_d or tuned[0]
        chunk = chunk or tuned[1]
        num_warps = num_warps or tuned[2]
    if chunk is None:  # the scan backward reads the forward's states, so both kernels default to the same chunk
        chunk = 32 if np2 <= 16 else 16
    if block_d is None:
        if impl == "seq":
            block_d = max(1, min(16, 512 // np2))
        else:
            block_d = max(1, min(8, (512 if backward else 2048) // (np2 * chunk)))
        # one program walks the whole sequence: keep enough programs to fill the GPU when batch*dim is small
        while block_d > 1 and batch * cdiv(dim, block_d) < 4 * _num_sms(device):
            block_d //= 2
    if group_size < dim and group_size % block_d != 0:  # channels of a program share one group
        block_d = math.gcd(block_d, group_size & -group_size)
    if num_warps is None:
        if impl == "seq":
            num_warps = max(1, min(8, block_d * np2 // 512))
        else:
            num_warps = max(1, min(8, block_d * np2 * chunk // (256 if backward else 1024)))
    return block_d, chunk, num_warps


def _as_grouped(t):
    """B/C as (batch, G, N, L), or (dim, N) for the fixed form; and whether it varies with time."""
    if t.dim() == 2:
        return t, False
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t, True


def _grouped_bc(B, C):
    Bg, b_var = _as_grouped(B)
    Cg, c_var = _as_grouped(C)
    if b_var and c_var and Bg.shape[1] != Cg.shape[1]:
        raise ValueError(f"B has {Bg.shape[1]} groups and C has {Cg.shape[1]}; the Triton selective scan needs "
                         "the same number")
    n_groups = Bg.shape[1] if b_var else (Cg.shape[1] if c_var else 1)
    return Bg, b_var, Cg, c_var, n_groups


def _bc_strides(t, var):
    if var:
        return t.stride(0), t.stride(1), t.stride(2), t.stride(3)
    return t.stride(0), 0, t.stride(1), 0


def _state_tiles(t, var, np2, tile, fp32=False):
    """Variable B or C (batch, G, N, L) re-laid as (batch, G, ceil(L/T), NP, T) in its dtype (fp32 with ``fp32``),
    zero-padded in N and L: the thread kernels read a time tile of all NP rows from one base address. Fixed (dim, N)
    passes through. One copy kernel (two with a partial last tile), converting as it copies, and a memset only where
    there is padding: this runs on every forward and backward call, whose host time is a few such launches."""
    if not var:
        return t
    batch, groups, dstate, seqlen = t.shape
    full, rest = divmod(seqlen, tile)
    shape = (batch, groups, full + (rest > 0), np2, tile)
    dtype = torch.float32 if fp32 else t.dtype
    padded = rest > 0 or dstate < np2
    tiles = (torch.zeros if padded else torch.empty)(shape, device=t.device, dtype=dtype)
    if not padded:  # the common case, without the slicing views (each costs host time)
        tiles.copy_(t.unflatten(3, (full, tile)).transpose(2, 3))
    elif full:
        tiles[:, :, :full, :dstate].copy_(t[..., :full * tile].unflatten(3, (full, tile)).transpose(2, 3))
    if rest:
        tiles[:, :, full, :dstate, :rest].copy_(t[..., full * tile:])
    return tiles


def _tile_strides(tiles, var):
    """Kernel strides (batch, group, n, l) of ``_state_tiles`` output; n and l are implied by the layout."""
    return (tiles.stride(0), tiles.stride(1), 0, 0) if var else _bc_strides(tiles, var)


def _contig_last(t):
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


def _whole_chunk_segments(n_chunks, n_seg):
    """(chunks per segment, segment count) for about ``n_seg`` segments of whole chunks (so every chunk-end state
    is written by one program); at most one segment per chunk."""
    chunks_per_seg = cdiv(n_chunks, max(1, min(n_seg, n_chunks)))
    return chunks_per_seg, cdiv(n_chunks, chunks_per_seg)


def _segment_buffers(batch, n_seg, dim, np2, placeholder):
    """What the two passes of a segmented thread kernel exchange: per segment a (batch, n_seg, dim, NP) fp32 state
    (forward: the local end state; backward: the adjoint carry) and a (batch, n_seg, dim) fp32 sum of delta. With one
    segment the kernels never touch them, and ``placeholder`` (any fp32 tensor) stands in for both."""
    if n_seg == 1:
        return placeholder, placeholder
    return (torch.empty(batch, n_seg, dim, np2, device=placeholder.device, dtype=torch.float32),
            torch.empty(batch, n_seg, dim, device=placeholder.device, dtype=torch.float32))


def _thread_variant_forward(impl, u, delta, A, B, C, D, z, delta_bias, delta_softplus, block_d=None, chunk=None,
                            num_warps=None, tile=None, n_seg=None):
    """Run a THREAD_VARIANTS forward: (out, states, chunk) as ``_forward``, or None where it does not apply (the
    caller then runs the "thread" forward)."""
    lanes, poly, fp32_bc, prefetch, stages, segments = THREAD_VARIANTS[impl]
    batch, dim, seqlen, dstate = u.shape[0], u.shape[1], u.shape[2], A.shape[1]
    np2 = max(2, next_power_of_2(dstate))
    if dstate > MAX_THREAD_DSTATE or ((n_seg or 1) > 1 and not segments):
        return None
    lanes = min(lanes, np2)
    poly = min(poly, np2 // lanes)
    Bg, b_var, Cg, c_var, n_groups = _grouped_bc(B, C)
    block_d, chunk, _, tile, _ = _pick_thread_config(batch, dim, seqlen, dim // n_groups, u.device,
                                                     block_d or 32 // lanes, chunk, num_warps,
                                                     tile or (PIPELINED_TILE if stages else None), 1)
    num_warps = num_warps or max(1, block_d * lanes // 32)
    dblocks = cdiv(dim, block_d)
    thin = batch * dblocks * num_warps < THREAD_VARIANT_MIN_WARPS_PER_SM * _num_sms(u.device)
    if thin and n_seg is None and not segments:
        return None
    n_chunks = cdiv(seqlen, chunk)
    if segments and (thin or n_seg is not None):  # the "thread" forward's segment count
        n_seg = _pick_thread_config(batch, dim, seqlen, dim // n_groups, u.device, chunk=chunk, tile=tile,
                                    n_seg=n_seg)[4]
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    states = torch.empty(batch, dim, n_chunks, np2, device=u.device, dtype=torch.float32)
    zz = z if z is not None else u
    Bt, Ct = _state_tiles(Bg, b_var, np2, tile, fp32_bc), _state_tiles(Cg, c_var, np2, tile, fp32_bc)
    args = (u, delta, A, Bt, Ct, D if D is not None else A, zz, delta_bias if delta_bias is not None else A, out,
            states)
    strides = (*u.stride(), *delta.stride(), *zz.stride(), *out.stride(), *_tile_strides(Bt, b_var),
               *_tile_strides(Ct, c_var), *A.stride())
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), B_VAR=b_var, C_VAR=c_var, BLOCK_D=block_d, NP=np2, CHUNK=chunk,
                 T=tile, S=lanes, POLY=poly,
                 VEC=16 // max(Bt.element_size() if b_var else 1, Ct.element_size() if c_var else 1),
                 num_warps=num_warps)
    if stages or (n_seg or 1) > 1:  # the pipelined kernel, on one segment or several (whole chunks each)
        chunks_per_seg, n_seg = _whole_chunk_segments(n_chunks, n_seg or 1)
        seg_h, seg_dt = _segment_buffers(batch, n_seg, dim, np2, states)
        sizes = (dim, seqlen, n_chunks, chunks_per_seg, n_seg, dim // n_groups, dstate)
        for local, programs in ((True, n_seg - 1), (False, n_seg)):
            if programs:
                _thread_lanes_seg_fwd_kernel[(batch, dblocks, programs)](
                    *args, seg_h, seg_dt, *sizes, *strides, LOCAL=local, STAGES=max(1, stages),
                    INTERP=triton_interpreting(), **flags)
        return out, states, chunk
    kernel = _thread_lanes_pf_fwd_kernel if prefetch else _thread_lanes_fwd_kernel
    kernel[(batch, dblocks)](*args, dim, seqlen, n_chunks, dim // n_groups, dstate, *strides, **flags)
    return out, states, chunk


def _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, impl="seq", block_d=None, chunk=None,
             num_warps=None, tile=None, n_seg=None):
    """Run the forward kernel; returns out, the chunk-end states (batch, dim, n_chunks, NP) fp32 and the chunk."""
    if impl in THREAD_VARIANTS:
        result = _thread_variant_forward(impl, u, delta, A, B, C, D, z, delta_bias, delta_softplus, block_d, chunk,
                                         num_warps, tile, n_seg)
        if result is not None:
            return result
        impl = "thread"
    batch, dim, seqlen, dstate = u.shape[0], u.shape[1], u.shape[2], A.shape[1]
    np2 = max(2, next_power_of_2(dstate))
    Bg, b_var, Cg, c_var, n_groups = _grouped_bc(B, C)
    if impl == "thread":
        block_d, chunk, num_warps, tile, n_seg = _pick_thread_config(batch, dim, seqlen, dim // n_groups, u.device,
                                                                     block_d, chunk, num_warps, tile, n_seg)
    else:
        block_d, chunk, num_warps = _pick_config(impl, batch, dim, seqlen, np2, dim // n_groups, u.device, block_d,
                                                 chunk, num_warps)
    n_chunks = cdiv(seqlen, chunk)
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    states = torch.empty(batch, dim, n_chunks, np2, device=u.device, dtype=torch.float32)
    zz = z if z is not None else u
    args = (u, delta, A, Bg, Cg, D if D is not None else A, zz, delta_bias if delta_bias is not None else A, out,
            states)
    strides = (*u.stride(), *delta.stride(), *zz.stride(), *out.stride(),
               *_bc_strides(Bg, b_var), *_bc_strides(Cg, c_var), *A.stride())
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), B_VAR=b_var, C_VAR=c_var, BLOCK_D=block_d, NP=np2, CHUNK=chunk,
                 num_warps=num_warps)
    if impl == "thread":
        Bg, Cg = _state_tiles(Bg, b_var, np2, tile), _state_tiles(Cg, c_var, np2, tile)
        args = args[:3] + (Bg, Cg) + args[5:]
        strides = strides[:12] + _tile_strides(Bg, b_var) + _tile_strides(Cg, c_var) + strides[20:]
        chunks_per_seg, n_seg = _whole_chunk_segments(n_chunks, n_seg)
        seg_h, seg_dt = _segment_buffers(batch, n_seg, dim, np2, states)
        sizes = (dim, seqlen, n_chunks, chunks_per_seg, n_seg, dim // n_groups, dstate)
        dblocks = cdiv(dim, block_d)
        if n_seg > 1:
            _thread_fwd_kernel[(batch, dblocks, n_seg - 1)](*args, seg_h, seg_dt, *sizes, *strides, LOCAL=True,
                                                            T=tile, **flags)
        _thread_fwd_kernel[(batch, dblocks, n_seg)](*args, seg_h, seg_dt, *sizes, *strides, LOCAL=False, T=tile,
                                                    **flags)
        return out, states, chunk
    kernel = _seq_fwd_kernel if impl == "seq" else _scan_fwd_kernel
    kernel[(batch, cdiv(dim, block_d))](*args, dim, seqlen, n_chunks, dim // n_groups, dstate, *strides, **flags)
    return out, states, chunk


def _alert_atomic_adds(impl):
    """Under ``torch.use_deterministic_algorithms(True)``, a backward whose variable dB/dC are summed by atomic
    adds (their order, so the last bits, varies run to run) raises, or warns with ``warn_only=True``, as torch's own
    nondeterministic kernels do. The default thread backward stores per-program sums instead in that mode, so this
    concerns N > 16 (the scan backward), programs of fewer than 16 channels (B/C groups that small), whose sums
    are atomics, and the opt-in kernels that always use atomics."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    msg = (f"the Triton selective scan's '{impl}' backward adds variable dB/dC with atomics, which is "
           "nondeterministic, and torch.use_deterministic_algorithms(True) is set; use at most 16 states (the "
           "default backward is then deterministic), backend='reference', or warn_only=True")
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(msg, stacklevel=3)
    else:
        raise RuntimeError(msg)


def _backward(dout, u, delta, A, B, C, D, z, delta_bias, delta_softplus, states, chunk, impl="seq", block_d=None,
              num_warps=None, tile=None):
    """Gradients for (u, delta, A, B, C, D, z, delta_bias) from the saved chunk-end states."""
    batch, dim, seqlen, dstate = u.shape[0], u.shape[1], u.shape[2], A.shape[1]
    np2, n_chunks = states.shape[-1], states.shape[2]
    Bg, b_var, Cg, c_var, n_groups = _grouped_bc(B, C)
    variant = THREAD_BWD_VARIANTS.get(impl)
    bc_dot, fp32_bc, poly, n_seg, variant_tile, dot_cols, lanes, stages, shuffle, atomic = (
        variant or ThreadBwdVariant(False, False, n_seg=1))
    if variant is not None:
        impl = "thread"
    if impl == "thread":
        lanes = min(lanes, np2)
        block_d, _, picked_warps, tile, picked_seg = _pick_thread_config(
            batch, dim, seqlen, dim // n_groups, u.device, block_d or (32 // lanes if lanes > 1 else None), chunk,
            num_warps, tile or variant_tile, backward=True)
        if variant is not None:
            # the product sums over >= 16 channels; 2: fp32 dB/dC, summed to 32 significant bits (1: 16)
            bc_dot = bc_dot and (b_var or c_var) and block_d >= 16
            bc_dot = bc_dot and 1 + any(t.dtype == torch.float32 for t, var in ((B, b_var), (C, c_var)) if var)
            n_seg = picked_seg if n_seg is None else n_seg
            if (b_var or c_var) and not bc_dot:  # lanes sum variable dB/dC per state only in the products
                lanes = 1
        num_warps = num_warps or (picked_warps if lanes == 1 else max(1, block_d * lanes // 32))
        if bc_dot and shuffle and lanes == 1 and block_d == 32 and num_warps == 1 and b_var and c_var and np2 == 16:
            bc_dot = 4 if atomic and not torch.are_deterministic_algorithms_enabled() else 3
            dot_cols = dot_cols if dot_cols % 32 == 0 else 0  # 32 values per lane per butterfly
    else:
        block_d, _, num_warps = _pick_config(impl, batch, dim, seqlen, np2, dim // n_groups, u.device, block_d,
                                             chunk, num_warps, backward=True)
    if (b_var or c_var) and (impl != "thread" or bc_dot in (0, 4)):
        _alert_atomic_adds(impl)
    dev, f32 = u.device, torch.float32
    if impl == "thread":  # sequence segments of the thread backward: whole chunks each
        chunks_per_seg, n_seg = _whole_chunk_segments(n_chunks, n_seg)
    rows = batch * n_seg if impl == "thread" else batch  # per-channel partials: one row per (batch, segment)
    dout = dout.contiguous()
    du = torch.empty(batch, dim, seqlen, device=dev, dtype=u.dtype)
    ddelta = torch.empty(batch, dim, seqlen, device=dev, dtype=delta.dtype)
    dz = torch.empty(batch, dim, seqlen, device=dev, dtype=z.dtype) if z is not None else du
    dA = torch.empty(rows, dim, np2, device=dev, dtype=f32)
    partials = bc_dot in (1, 2, 3)  # variable dB/dC summed per program, then over the programs by torch
    dB = (torch.zeros(batch, n_groups, np2, seqlen, device=dev, dtype=f32) if b_var and not partials
          else torch.empty(rows, dim, np2, device=dev, dtype=f32))
    dC = (torch.zeros(batch, n_groups, np2, seqlen, device=dev, dtype=f32) if c_var and not partials
          else torch.empty(rows, dim, np2, device=dev, dtype=f32))
    dD = torch.empty(rows, dim, device=dev, dtype=f32) if D is not None else dA
    dbias = torch.empty(rows, dim, device=dev, dtype=f32) if delta_bias is not None else dA
    zz = z if z is not None else u
    grid = (batch, cdiv(dim, block_d))
    common = (
        dim, seqlen, n_chunks, dim // n_groups, dstate, n_groups,
        *u.stride(), *delta.stride(), *zz.stride(), *dout.stride(),
        *_bc_strides(Bg, b_var), *_bc_strides(Cg, c_var), *A.stride(),
    )
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), B_VAR=b_var, C_VAR=c_var, BLOCK_D=block_d, NP=np2, CHUNK=chunk,
                 num_warps=num_warps)
    inputs = (u, delta, A, Bg, Cg, D if D is not None else A, zz, delta_bias if delta_bias is not None else A, states,
              dout)
    grads = (du, ddelta, dz, dA, dB, dC, dD, dbias)
    if impl == "thread":
        Bt, Ct = _state_tiles(Bg, b_var, np2, tile, fp32_bc), _state_tiles(Cg, c_var, np2, tile, fp32_bc)
        scratch = torch.empty(grid[0] * grid[1] * n_seg * (chunk // tile + tile) * np2 * block_d, device=dev,
                              dtype=f32)
        strides = (*u.stride(), *delta.stride(), *zz.stride(), *_tile_strides(Bt, b_var), *_tile_strides(Ct, c_var),
                   *A.stride())
        seg_g, seg_dt = _segment_buffers(batch, n_seg, dim, np2, scratch)
        if n_seg > 1:  # first pass: each later segment's own adjoint carry and delta sum
            _thread_bwd_carry_kernel[(batch, grid[1], n_seg - 1)](
                u, delta, A, Bt, Ct, zz, inputs[7], dout, seg_g, seg_dt, dim, seqlen, n_chunks, chunks_per_seg,
                n_seg, dim // n_groups, dstate, *strides, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=bool(delta_softplus), B_VAR=b_var, C_VAR=c_var, BLOCK_D=block_d, NP=np2, CHUNK=chunk,
                T=tile, TM=tile, POLY=min(poly, np2), num_warps=num_warps)
        # BC_DOT: per-program channel sums of variable dB/dC, (dB if var, dC if var) x (batch, blocks, NP, L) fp32
        parts = (torch.empty(b_var + c_var, batch, grid[1], np2, seqlen, device=dev, dtype=f32) if partials
                 else scratch)
        c_part = parts[0].numel() if partials and b_var else 0  # dC's partials follow dB's
        _thread_bwd_kernel[(*grid, n_seg)](
            u, delta, A, Bt, Ct, *inputs[5:], scratch, *grads, dim, seqlen, n_chunks, dim // n_groups, dstate,
            n_groups, *strides, parts, c_part, seg_g, seg_dt, chunks_per_seg, n_seg, T=tile, TM=tile, BC_DOT=bc_dot,
            POLY=min(poly, np2 // lanes), INTERP=triton_interpreting(), DOT_COLS=dot_cols,
            S=lanes, STAGES=stages, EVEN_D=dim % block_d == 0, **flags)
        if partials:  # sum each group's blocks
            sums = parts.unflatten(2, (n_groups, grid[1] // n_groups)).sum(3)
            dB = sums[0] if b_var else dB
            dC = sums[int(b_var)] if c_var else dC
    elif impl == "seq":
        scratch = torch.empty(grid[0] * grid[1] * chunk * np2 * block_d, device=dev, dtype=f32)
        _seq_bwd_kernel[grid](*inputs, scratch, *grads, *common, **flags)
    else:
        _scan_bwd_kernel[grid](*inputs, *grads, *common, **flags)

    def finish_bc(grad, var, like):
        if var:
            grad = grad[:, :, :dstate]
            return (grad.squeeze(1) if like.dim() == 3 else grad).to(like.dtype)
        return grad.sum(0)[:, :dstate].to(like.dtype)

    return (
        du, ddelta, dA.sum(0)[:, :dstate],
        finish_bc(dB, b_var, B), finish_bc(dC, c_var, C),
        dD.sum(0).to(D.dtype) if D is not None else None,
        dz if z is not None else None,
        dbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
    )


class SelectiveScanTriton(torch.autograd.Function):
    """Autograd wrapper: saves the inputs and the chunk-end states, recomputes everything else."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, config):
        impl, block_d, chunk, tile, n_seg, needs_grad = config
        fwd_impl, bwd_impl = KERNEL_PAIRS[impl]
        if A.shape[1] > MAX_THREAD_DSTATE:  # the thread kernels hold N states per lane
            fwd_impl = "seq" if fwd_impl.startswith("thread") else fwd_impl
            bwd_impl = "scan" if bwd_impl.startswith("thread") else bwd_impl
        if chunk is None and fwd_impl.startswith("thread") and needs_grad:
            chunk = SCAN_BWD_CHUNK if bwd_impl == "scan" else THREAD_BWD_CHUNK
        out, states, chunk = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, fwd_impl, block_d, chunk,
                                      tile=tile, n_seg=n_seg)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        ctx.delta_softplus = delta_softplus
        ctx.config = (bwd_impl, chunk, block_d)
        # Unused outputs get None, not zeros: a gradient arriving for last_state means it was used in the loss.
        ctx.set_materialize_grads(False)
        if return_last_state:
            return out, states[:, :, -1, : A.shape[1]].contiguous()
        return out

    @staticmethod
    def backward(ctx, dout, *dlast):
        if dlast and dlast[0] is not None:  # refused, not silently dropped
            raise RuntimeError("the Triton selective scan has no gradient through last_state (as mamba_ssm's); "
                               "detach it, or use backend='reference'")
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(u)
        impl, chunk, block_d = ctx.config
        grads = _backward(dout, u, delta, A, B, C, D, z, delta_bias, ctx.delta_softplus, states, chunk, impl,
                          block_d)
        return (*grads, None, None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, *, _impl="auto", _block_d=None, _chunk=None, _tile=None,
                          _n_seg=None):
    """Selective scan with mamba_ssm ``selective_scan_fn`` semantics on the fused Triton kernels.

    Args are those of :func:`mamba_core.ops.selective_scan_ref`. Private overrides: ``_impl`` picks the kernels:
    "thread" (one lane per channel, forward and backward, see ``selective_scan_triton_thread`` and
    ``selective_scan_triton_thread_bwd``), "thread_scan" (thread forward, scan backward), "seq" (step-by-step
    recurrence), "scan" (``tl.associative_scan`` over chunks), "auto" (the fastest pair measured: the
    "thread_split2_stages3_seg" forward variant, which splits thin inputs into sequence segments, with the
    "thread_shfl_g32_atomic_stages3" backward, deterministic "thread_shfl_g32_stages3" under
    ``torch.use_deterministic_algorithms``; N > 16: "seq" forward, "scan" backward) or one of the other thread-forward
    variants in ``THREAD_VARIANTS`` (``selective_scan_triton_lanes``: lane split, software exponentials, fp32 B/C,
    pipelined loads, segments), or "bwd_<name>": the default forward with a thread-backward
    variant of ``THREAD_BWD_VARIANTS``. The environment variable ``MAMBA_CORE_SCAN_IMPL`` replaces "auto", e.g.
    to fall back to "thread_scan".
    ``_block_d`` channels per program and ``_chunk`` steps per saved state (powers of two; the scan kernels need
    ``_chunk`` >= 16), e.g. so that tests cover several chunks with short sequences; ``_tile`` steps per unrolled
    tile and ``_n_seg`` sequence segments of the thread forward.

    Returns:
        out (batch, dim, L) in u's dtype, plus the last state (batch, dim, N) fp32 if ``return_last_state``.
    """
    _check_kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    if _impl == "auto":
        _impl = os.environ.get("MAMBA_CORE_SCAN_IMPL", "") or "auto"
        if _impl not in IMPLS:
            raise ValueError(f"MAMBA_CORE_SCAN_IMPL must be one of {IMPLS}, got {_impl!r}")
    if _impl not in IMPLS:
        raise ValueError(f"_impl must be one of {IMPLS}, got {_impl!r}")
    if _n_seg is not None and _n_seg < 1:
        raise ValueError(f"_n_seg must be >= 1, got {_n_seg}")
    for name, v in (("_block_d", _block_d), ("_chunk", _chunk), ("_tile", _tile)):
        if v is not None and (v < 1 or v & (v - 1)):
            raise ValueError(f"{name} must be a power of two, got {v}")
    if _impl != "seq" and _chunk is not None and _chunk < 16:
        raise ValueError(f"_chunk must be >= 16 for the scan kernels, got {_chunk}")
    # a backward will run (inside the Function grad mode is off and needs_input_grad ignores torch.no_grad)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    u, delta, z = _contig_last(u), _contig_last(delta), _contig_last(z)
    B = B.contiguous() if B.dim() == 2 else B
    C = C.contiguous() if C.dim() == 2 else C
    return SelectiveScanTriton.apply(u, delta, A.contiguous(), B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state, (_impl, _block_d, _chunk, _tile, _n_seg, needs_grad))
