"""Thread-per-channel selective-scan forward in Triton: each thread owns one channel and all of its N <= 16 states.

Why a second forward: in the ``seq``/``scan`` kernels of ``selective_scan_triton`` Triton spreads the N states of a
channel over lanes, so every step's ``y_t = sum_n h_t[n] C_t[n]`` costs warp shuffles, and the per-step scalar loads
leave each warp waiting on memory. Here the state is a tuple of N separate (BLOCK_D,) fp32 vectors, one lane per
channel, so the reduction over n is in-thread adds and the exponentials (one per element, the bound at N = 16) are
the dominant cost. Time is walked in tiles of T steps: u, delta, z, and each B/C row are read as (BLOCK_D, T) tiles
(one vector load per lane; B/C rows are the same address for every lane of a batch element), the T steps are
unrolled, and y leaves as one (BLOCK_D, T) tile. Tiles that run past L take a masked copy of the same code.

Long sequences with few channels (batch*dim small, e.g. (1, 1048576, 256)) cannot fill the GPU with one program per
32 channels, so the sequence is also split into ``n_seg`` segments of whole chunks run in parallel:

1. ``LOCAL`` pass (segments 0 .. n_seg-2): run the segment from a zero state; write its end state and sum of delta.
2. full pass (all segments): rebuild the true start state from the earlier segments,
   ``h <- h_local[s] + exp(A * sum(delta)[s]) * h`` (the product of a segment's ``exp(delta_t A)`` is one
   exponential because A is constant in time), then rerun the segment writing y and the chunk-end states.

Outputs match ``_scan_fwd_kernel``: y and the fp32 state at the end of every CHUNK steps, (batch, dim, n_chunks, NP),
which the backward kernels read.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .selective_scan_triton_common import softplus_fp32

MAX_THREAD_DSTATE = 16


@triton.jit
def _column(tile, sel):
    """Column k of a (BLOCK_D, T) tile whose T axis lives in one thread; ``sel`` is ``arange(T) == k``."""
    return tl.sum(tl.where(sel, tile.to(tl.float32), 0.0), axis=1)


@triton.jit
def _state_row(row_ptr, ok, NP: tl.constexpr, MASK_T: tl.constexpr):
    """The NP fp32 values of one time step of B or C, as NP uniform scalars (every lane loads the same 8-byte
    words, so the values sit in each thread's registers with no shuffles); zeros where not ``ok`` (if MASK_T)."""
    words = row_ptr.to(tl.pointer_type(tl.int64))
    vals = ()
    for j in tl.static_range(NP // 2):
        if MASK_T:
            w = tl.load(words + j, mask=ok, other=0)
        else:
            w = tl.load(words + j)
        vals = vals + ((w & 0xFFFFFFFF).to(tl.int32).to(tl.float32, bitcast=True),
                       (w >> 32).to(tl.int32).to(tl.float32, bitcast=True))
    return vals


@triton.jit
def _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, t0, L, dmask,
                 u_row, dt_row, z_row, o_row, B_rows, C_rows,
                 s_ul, s_dl, s_zl, s_ol,
                 HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                 B_VAR: tl.constexpr, C_VAR: tl.constexpr, LOCAL: tl.constexpr, MASK_T: tl.constexpr,
                 NP: tl.constexpr, T: tl.constexpr):
    """Advance the state tuple ``h`` over steps t0 .. t0+T-1 (all < L unless MASK_T); write y unless LOCAL.

    B_rows/C_rows point at time step 0 of this batch element's (L, NP) fp32 rows."""
    tt = tl.arange(0, T)
    t = t0 + tt
    if MASK_T:
        m2 = dmask[:, None] & (t < L)[None, :]
    else:
        m2 = tl.broadcast_to(dmask[:, None], (dmask.shape[0], T))
    u = tl.load(u_row[:, None] + t[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
    dt = tl.load(dt_row[:, None] + t[None, :] * s_dl, mask=m2, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias[:, None]
    if SOFTPLUS:
        dt = softplus_fp32(dt)
    if MASK_T:
        dt = tl.where(m2, dt, 0.0)  # a zero step leaves the state unchanged
    dtu = dt * u
    if LOCAL:
        dtsum += tl.sum(dt, axis=1)
    y = tl.zeros_like(u)
    for k in tl.static_range(T):
        sel = (tt == k)[None, :]
        dt_k = _column(dt, sel)
        dtu_k = _column(dtu, sel)
        ok = (t0 + k) < L
        if B_VAR:
            b_k = _state_row(B_rows + (t0 + k) * NP, ok, NP, MASK_T)
        else:
            b_k = Bfix
        if not LOCAL:
            if C_VAR:
                c_k = _state_row(C_rows + (t0 + k) * NP, ok, NP, MASK_T)
            else:
                c_k = Cfix
        y_k = tl.zeros_like(dt_k)
        hn = ()
        for n in tl.static_range(NP):
            h_n = tl.exp2(dt_k * A2[n]) * h[n] + dtu_k * b_k[n]
            hn = hn + (h_n,)
            if not LOCAL:
                y_k += h_n * c_k[n]
        h = hn
        if not LOCAL:
            y = tl.where(sel, y_k[:, None], y)
    if not LOCAL:
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zz = tl.load(z_row[:, None] + t[None, :] * s_zl, mask=m2, other=0.0).to(tl.float32)
            y = y * zz * tl.sigmoid(zz)
        tl.store(o_row[:, None] + t[None, :] * s_ol, y, mask=m2)
    return h, dtsum


@triton.jit
def _thread_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr, seg_h_ptr, seg_dt_ptr,
    dim, L, n_chunks, chunks_per_seg, n_seg, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr, LOCAL: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr,
):
    # seg_h: (batch, n_seg, dim, NP) fp32 local end states; seg_dt: (batch, n_seg, dim) fp32 sums of delta.
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    seg = tl.program_id(2)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < dim
    grp = (pid_d * BLOCK_D) // group_size

    A2 = ()
    Bfix = ()
    Cfix = ()
    for n in tl.static_range(NP):
        nm = dmask & (n < dstate)
        A2 = A2 + (tl.load(A_ptr + d * s_Ad + n * s_An, mask=nm, other=0.0) * 1.4426950408889634,)
        if not B_VAR:
            Bfix = Bfix + (tl.load(B_ptr + d * s_Bb + n * s_Bn, mask=nm, other=0.0).to(tl.float32),)
        if not C_VAR:
            Cfix = Cfix + (tl.load(C_ptr + d * s_Cb + n * s_Cn, mask=nm, other=0.0).to(tl.float32),)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=dmask, other=0.0).to(tl.float32)

    seg_row = (pid_b * n_seg * dim + d) * NP  # + (s * dim) * NP + n
    h = ()
    for n in tl.static_range(NP):
        h = h + (tl.zeros([BLOCK_D], dtype=tl.float32),)
    if not LOCAL:
        s = 0
        while s < seg:  # fold in the earlier segments: h <- h_local[s] + exp(A sum(delta)[s]) h
            dts = tl.load(seg_dt_ptr + (pid_b * n_seg + s) * dim + d, mask=dmask, other=0.0)
            hn = ()
            for n in tl.static_range(NP):
                hl = tl.load(seg_h_ptr + seg_row + s * dim * NP + n, mask=dmask, other=0.0)
                hn = hn + (hl + tl.exp2(dts * A2[n]) * h[n],)
            h = hn
            s += 1
    dtsum = tl.zeros([BLOCK_D], dtype=tl.float32)

    u_row = u_ptr + pid_b * s_ub + d * s_ud
    dt_row = delta_ptr + pid_b * s_db + d * s_dd
    z_row = z_ptr + pid_b * s_zb + d * s_zd
    o_row = out_ptr + pid_b * s_ob + d * s_od
    B_rows = B_ptr + pid_b * s_Bb + grp * s_Bg  # var B/C: (batch, G, L, NP) fp32 rows, see the docstring
    C_rows = C_ptr + pid_b * s_Cb + grp * s_Cg
    c = seg * chunks_per_seg
    c_end = tl.minimum(c + chunks_per_seg, n_chunks)
    while c < c_end:
        j = 0
        while j < CHUNK // T:
            t0 = c * CHUNK + j * T
            if t0 + T <= L:
                h, dtsum = _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, u_row, dt_row, z_row,
                                        o_row, B_rows, C_rows, s_ul, s_dl, s_zl, s_ol,
                                        HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, False, NP, T)
            elif t0 < L:
                h, dtsum = _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, u_row, dt_row, z_row,
                                        o_row, B_rows, C_rows, s_ul, s_dl, s_zl, s_ol,
                                        HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, True, NP, T)
            j += 1
        if not LOCAL:
            st_row = ((pid_b * dim + d) * n_chunks + c) * NP
            for n in tl.static_range(NP):
                tl.store(states_ptr + st_row + n, h[n], mask=dmask)
        c += 1
    if LOCAL:
        for n in tl.static_range(NP):
            tl.store(seg_h_ptr + seg_row + seg * dim * NP + n, h[n], mask=dmask)
        tl.store(seg_dt_ptr + (pid_b * n_seg + seg) * dim + d, dtsum, mask=dmask)
