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

from .selective_scan_triton_common import channel_bias_and_d, silu_gate, softplus_fp32

MAX_THREAD_DSTATE = 16


@triton.jit
def _halves(x):
    """(R, W) or (R, S, W) -> its even and its odd steps (the last axis); with that axis inside one thread this
    only renames registers."""
    if len(x.shape) == 2:
        halves = tl.split(tl.reshape(x, (x.shape[0], x.shape[1] // 2, 2)))
    else:
        halves = tl.split(tl.reshape(x, (x.shape[0], x.shape[1], x.shape[2] // 2, 2)))
    return halves


@triton.jit
def _columns(x, T: tl.constexpr):
    """The T steps (last axis) of a (R, T) or (R, S, T) tile (T a power of 2) as a tuple of (R,) or (R, S) fp32
    tensors, by register renaming (a masked sum would cost T adds per column)."""
    if T == 1:
        if len(x.shape) == 2:
            cols = (tl.reshape(x, (x.shape[0],)),)
        else:
            cols = (tl.reshape(x, (x.shape[0], x.shape[1])),)
    elif T == 2:
        c0, c1 = tl.split(x)
        cols = (c0, c1)
    elif T == 4:
        e, o = _halves(x)
        c0, c2 = tl.split(e)
        c1, c3 = tl.split(o)
        cols = (c0, c1, c2, c3)
    elif T == 8:
        e, o = _halves(x)
        ee, eo = _halves(e)
        oe, oo = _halves(o)
        c0, c4 = tl.split(ee)
        c2, c6 = tl.split(eo)
        c1, c5 = tl.split(oe)
        c3, c7 = tl.split(oo)
        cols = (c0, c1, c2, c3, c4, c5, c6, c7)
    else:  # 16, 32, ...: the even and the odd steps' columns, interleaved
        e, o = _halves(x)
        ce = _columns(e, T // 2)
        co = _columns(o, T // 2)
        cols = ()
        for k in tl.static_range(T // 2):
            cols = cols + (ce[k], co[k])
    out = ()
    for k in tl.static_range(T):
        out = out + (cols[k].to(tl.float32),)
    return out


@triton.jit
def _join_columns(cols, T: tl.constexpr):
    """Inverse of ``_columns``: T (R,) or (R, S) columns -> one (R, T) or (R, S, T) tile with the steps in registers
    (even and odd steps joined recursively, T a power of 2)."""
    if T == 1:
        if len(cols[0].shape) == 1:
            x = tl.reshape(cols[0], (cols[0].shape[0], 1))
        else:
            x = tl.reshape(cols[0], (cols[0].shape[0], cols[0].shape[1], 1))
    elif T == 2:
        x = tl.join(cols[0], cols[1])
    else:
        even = ()
        odd = ()
        for k in tl.static_range(T // 2):
            even = even + (cols[2 * k],)
            odd = odd + (cols[2 * k + 1],)
        x = tl.join(_join_columns(even, T // 2), _join_columns(odd, T // 2))
        if len(cols[0].shape) == 1:
            x = tl.reshape(x, (cols[0].shape[0], T))
        else:
            x = tl.reshape(x, (cols[0].shape[0], cols[0].shape[1], T))
    return x


@triton.jit
def _state_tiles(tile_ptr, zero_cols, tt, NP: tl.constexpr, T: tl.constexpr, TM: tl.constexpr):
    """T steps of B or C as NP tuples of T (BLOCK_D,) columns, each the same in every lane (a broadcast).

    ``tile_ptr`` points into a contiguous (NP, TM) block (see ``_state_tiles`` in selective_scan_triton), so all NP
    loads share one base register with compile-time offsets, and each is one T-element vector per lane."""
    tiles = ()
    for n in tl.static_range(NP):
        tiles = tiles + (_columns(tl.load(tile_ptr + n * TM + zero_cols + tt[None, :]), T),)
    return tiles


@triton.jit
def _per_step(x):
    """A (BLOCK_D,) or (BLOCK_D, S) per-channel tensor with a trailing step axis, to broadcast over a tile (with
    a (1, T) step row, Triton prepends the missing axis)."""
    if len(x.shape) == 1:
        out = x[:, None]
    else:
        out = x[:, :, None]
    return out


@triton.jit
def _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                 MASK_T: tl.constexpr, T: tl.constexpr):
    """Steps t0 .. t0+T-1 of a tile: (arange, steps, mask, u, delta + bias, delta after softplus) as (BLOCK_D, T)
    fp32; the mask only covers channels unless MASK_T, so that the loads stay vectors. delta is 0 where masked
    (a zero step leaves the state unchanged). With (BLOCK_D, S) rows (a channel's row on each of its S lanes):
    (BLOCK_D, S, T) tiles."""
    tt = tl.arange(0, T)
    t = t0 + tt
    if MASK_T:
        m2 = _per_step(dmask) & (t < L)[None, :]
    elif len(dmask.shape) == 2:
        m2 = tl.broadcast_to(dmask[:, :, None], (dmask.shape[0], dmask.shape[1], T))
    else:
        m2 = tl.broadcast_to(dmask[:, None], (dmask.shape[0], T))
    u = tl.load(_per_step(u_row) + t[None, :] * s_ul, mask=m2, other=0.0).to(tl.float32)
    dt_pre = tl.load(_per_step(dt_row) + t[None, :] * s_dl, mask=m2, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt_pre = dt_pre + _per_step(bias)
    dt = dt_pre
    if SOFTPLUS:
        dt = softplus_fp32(dt_pre, dt_row.dtype.element_ty != tl.float32)
    return tt, t, m2, u, dt_pre, tl.where(m2, dt, 0.0)


@triton.jit
def _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, t0, L, dmask,
                 u_row, dt_row, z_row, o_row, B_tiles, C_tiles,
                 s_ul, s_dl, s_zl, s_ol,
                 HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                 B_VAR: tl.constexpr, C_VAR: tl.constexpr, LOCAL: tl.constexpr, MASK_T: tl.constexpr,
                 NP: tl.constexpr, T: tl.constexpr, TM: tl.constexpr):
    """Advance the state tuple ``h`` over steps t0 .. t0+T-1 (all < L unless MASK_T); write y unless LOCAL.

    B_tiles/C_tiles point at this batch element's (L/TM, NP, TM) tiles of variable B/C (TM: the layout's tile)."""
    tt, t, m2, u, _, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS, MASK_T, T)
    dtu = dt * u
    if LOCAL:
        dtsum += tl.sum(dt, axis=1)
    zero_cols = tl.zeros_like(dmask.to(tl.int32))[:, None]  # (BLOCK_D, 1): broadcasts a B/C row over the lanes
    tile_offs = (t0 // TM) * (NP * TM)
    if T != TM:
        tile_offs += t0 % TM
    if B_VAR:
        Bt = _state_tiles(B_tiles + tile_offs, zero_cols, tt, NP, T, TM)
    if C_VAR and not LOCAL:
        Ct = _state_tiles(C_tiles + tile_offs, zero_cols, tt, NP, T, TM)
    dt_cols = _columns(dt, T)
    dtu_cols = _columns(dtu, T)
    y = tl.zeros_like(u)
    for k in tl.static_range(T):
        sel = (tt == k)[None, :]
        dt_k = dt_cols[k]
        dtu_k = dtu_cols[k]
        y_k = tl.zeros_like(dt_k)
        hn = ()
        for n in tl.static_range(NP):
            if B_VAR:
                b_kn = Bt[n][k]
            else:
                b_kn = Bfix[n]
            h_n = tl.exp2(dt_k * A2[n]) * h[n] + dtu_k * b_kn
            hn = hn + (h_n,)
            if not LOCAL:
                if C_VAR:
                    y_k += h_n * Ct[n][k]
                else:
                    y_k += h_n * Cfix[n]
        h = hn
        if not LOCAL:
            y = tl.where(sel, y_k[:, None], y)
    if not LOCAL:
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            zz = tl.load(z_row[:, None] + t[None, :] * s_zl, mask=m2, other=0.0)
            y = silu_gate(y, zz)
        tl.store(o_row[:, None] + t[None, :] * s_ol, y, mask=m2)
    return h, dtsum


@triton.jit
def _state_params(A_ptr, B_ptr, C_ptr, d, dmask, dstate, s_Ad, s_An, s_Bb, s_Bn, s_Cb, s_Cn,
                  B_VAR: tl.constexpr, C_VAR: tl.constexpr, NP: tl.constexpr):
    """Per state n: A * log2(e) and, when fixed, B and C, each a (BLOCK_D,) fp32 vector (zeros for n >= dstate)."""
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
    return A2, Bfix, Cfix


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

    A2, Bfix, Cfix = _state_params(A_ptr, B_ptr, C_ptr, d, dmask, dstate, s_Ad, s_An, s_Bb, s_Bn, s_Cb, s_Cn,
                                   B_VAR, C_VAR, NP)
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)

    seg_row = (pid_b * n_seg * dim + d) * NP  # + (s * dim) * NP + n
    h = ()
    for _ in tl.static_range(NP):
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
    B_tiles = B_ptr + pid_b * s_Bb + grp * s_Bg  # var B/C: (batch, G, L/T, NP, T) tiles, zero-padded
    C_tiles = C_ptr + pid_b * s_Cb + grp * s_Cg
    c = seg * chunks_per_seg
    c_end = tl.minimum(c + chunks_per_seg, n_chunks)
    while c < c_end:
        n_full = (tl.minimum((c + 1) * CHUNK, L) - c * CHUNK) // T
        j = 0
        while j < n_full:  # t0 written as c*CHUNK + j*T so that Triton sees it is a multiple of T (vector loads)
            h, dtsum = _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, c * CHUNK + j * T, L, dmask, u_row, dt_row,
                                    z_row, o_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, s_ol,
                                    HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, False, NP, T, T)
            j += 1
        t0 = c * CHUNK + n_full * T
        t_end = tl.minimum((c + 1) * CHUNK, L)
        while t0 < t_end:  # the sequence's last partial tile, one masked step at a time
            h, dtsum = _thread_tile(h, dtsum, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, u_row, dt_row, z_row,
                                    o_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, s_ol,
                                    HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, True, NP, 1, T)
            t0 += 1
        if not LOCAL:
            st_row = ((pid_b * dim + d) * n_chunks + c) * NP
            for n in tl.static_range(NP):
                tl.store(states_ptr + st_row + n, h[n], mask=dmask)
        c += 1
    if LOCAL:
        for n in tl.static_range(NP):
            tl.store(seg_h_ptr + seg_row + seg * dim * NP + n, h[n], mask=dmask)
        tl.store(seg_dt_ptr + (pid_b * n_seg + seg) * dim + d, dtsum, mask=dmask)
