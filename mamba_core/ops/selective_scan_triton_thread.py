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
def _sum_steps(x):
    """Sum of a (BLOCK_D, T) or (BLOCK_D, S, T) tile over its steps (in-thread adds)."""
    return tl.sum(x, axis=len(x.shape) - 1)


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


# ----------------------------------------------------------------------------------------------------- backward
@triton.jit
def _from_columns(cols, T: tl.constexpr):
    """Inverse of ``_columns``: T (R,) or (R, S) vectors -> a (R, T) or (R, S, T) tile, again by register
    renaming."""
    if len(cols[0].shape) == 2:
        x = tl.reshape(_from_columns(_flat(cols, T), T), (cols[0].shape[0], cols[0].shape[1], T))
    elif T == 1:
        x = tl.reshape(cols[0], (cols[0].shape[0], 1))
    elif T == 2:
        x = tl.join(cols[0], cols[1])
    elif T == 4:
        x = tl.reshape(tl.join(tl.join(cols[0], cols[2]), tl.join(cols[1], cols[3])), (cols[0].shape[0], 4))
    else:
        tl.static_assert(T == 8, "the thread backward unrolls tiles of 1, 2, 4 or 8 steps")
        e = tl.reshape(tl.join(tl.join(cols[0], cols[4]), tl.join(cols[2], cols[6])), (cols[0].shape[0], 4))
        o = tl.reshape(tl.join(tl.join(cols[1], cols[5]), tl.join(cols[3], cols[7])), (cols[0].shape[0], 4))
        x = tl.reshape(tl.join(e, o), (cols[0].shape[0], 8))
    return x


@triton.jit
def _flat(cols, T: tl.constexpr):
    """T (R, S) tensors as T (R*S,) vectors."""
    out = ()
    for k in tl.static_range(T):
        out = out + (tl.reshape(cols[k], (cols[k].shape[0] * cols[k].shape[1],)),)
    return out


@triton.jit
def _per_state(x, S: tl.constexpr):
    """A per-channel (BLOCK_D,) vector in the layout of the per-state tensors: itself (S = 1) or (BLOCK_D, 1),
    which broadcasts over the S lanes of a (BLOCK_D, S) state entry."""
    if S == 1:
        out = x
    else:
        out = x[:, None]
    return out


@triton.jit
def _state_sum(x, S: tl.constexpr):
    """A (BLOCK_D, S) per-lane partial sum over states -> the channel's sum on each of its lanes (the cross-lane
    combine); S = 1: x."""
    if S == 1:
        out = x
    else:
        out = tl.broadcast_to(tl.sum(x, axis=1, keep_dims=True), x.shape)
    return out


@triton.jit
def _state_entry(row, lane, j, NJ: tl.constexpr, S: tl.constexpr):
    """Offsets of entry j of a state tuple in a (..., NP) array, ``row`` the (BLOCK_D,) channel offsets: state j,
    or with S lanes per channel a (BLOCK_D, S) tensor of states lane*NJ + j (the order of ``_lanes_state_params``)."""
    if S == 1:
        offs = row + j
    else:
        offs = row[:, None] + lane[None, :] * NJ + j
    return offs


@triton.jit
def _bc_tiles(tile_ptr, zero_cols, tt, lane, NP: tl.constexpr, S: tl.constexpr, T: tl.constexpr, TM: tl.constexpr):
    """T steps of variable B or C in the layout of the state tuple: ``_state_tiles`` (S = 1) or NP/S tuples of T
    (BLOCK_D, S) columns, lane s of entry j holding row s*NJ + j (one base address, compile-time offsets j*TM);
    zero_cols: (BLOCK_D, 1) or (BLOCK_D, S, 1) zeros, for the shape."""
    if S == 1:
        tiles = _state_tiles(tile_ptr, zero_cols, tt, NP, T, TM)
    else:
        NJ: tl.constexpr = NP // S
        rows = tile_ptr + zero_cols + (lane * (NJ * TM))[None, :, None] + tt[None, None, :]
        tiles = ()
        for j in tl.static_range(NJ):
            tiles = tiles + (_columns(tl.load(rows + j * TM), T),)
    return tiles


@triton.jit
def _bwd_exp2(x, n: tl.constexpr, POLY: tl.constexpr):
    """exp2 of state n in the backward: the first POLY states on the FMA pipe (``_exp2_fma``), the rest on MUFU."""
    if n < POLY:
        a = _exp2_fma(x)
    else:
        a = tl.exp2(x)
    return a


@triton.jit
def _advance(h, dt_cols, dtu_cols, A2, Bfix, Bt, B_VAR: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
             POLY: tl.constexpr):
    """The states after each of T steps: a tuple of T state tuples (recomputation for the backward). NP: the
    tuple's entries (NP/S with S lanes per channel, dt_cols/dtu_cols then (BLOCK_D, S))."""
    hs = ()
    for k in tl.static_range(T):
        hn = ()
        for n in tl.static_range(NP):
            if B_VAR:
                b_kn = Bt[n][k]
            else:
                b_kn = Bfix[n]
            hn = hn + (_bwd_exp2(dt_cols[k] * A2[n], n, POLY) * h[n] + dtu_cols[k] * b_kn,)
        h = hn
        hs = hs + (h,)
    return hs


@triton.jit
def _join_pairs(tiles, K: tl.constexpr):
    """K (R, W) tiles -> K/2 (R, 2W) tiles, tile i interleaving the columns of tiles 2i and 2i+1 (with the column
    axis inside one thread, a register renaming)."""
    out = ()
    for i in tl.static_range(K // 2):
        x = tl.join(tiles[2 * i], tiles[2 * i + 1])
        out = out + (tl.reshape(x, (x.shape[0], x.shape[1] * 2)),)
    return out


@triton.jit
def _join_all(tiles, K: tl.constexpr):
    """K (R, W) tiles (K a power of two <= 64) side by side as one (R, K*W) tile: tile p's column w lands in column
    w*K + (p with its log2(K) bits reversed), the order of repeated ``_join_pairs``."""
    x = tiles
    if K >= 2:
        x = _join_pairs(x, K)
    if K >= 4:
        x = _join_pairs(x, K // 2)
    if K >= 8:
        x = _join_pairs(x, K // 4)
    if K >= 16:
        x = _join_pairs(x, K // 8)
    if K >= 32:
        x = _join_pairs(x, K // 16)
    if K >= 64:
        x = _join_pairs(x, K // 32)
    tl.static_assert(K <= 64, "at most 64 tiles")
    return x[0]


@triton.jit
def _ones_dot(hi, lo, acc, BLOCK_D: tl.constexpr, KT: tl.constexpr, INTERP: tl.constexpr):
    """acc + ones(16, 2*BLOCK_D) @ X, X's rows 2c and 2c + 1 being row c of the bf16 (BLOCK_D, KT) ``hi`` and
    ``lo``: every row of the result holds the column sums of hi + lo. The interpreter's dot mishandles bf16: there
    (INTERP) hi and lo go in as fp32."""
    if INTERP:
        pairs = tl.reshape(tl.permute(tl.join(hi.to(tl.float32), lo.to(tl.float32)), (0, 2, 1)), (2 * BLOCK_D, KT))
        return tl.dot(tl.full((16, 2 * BLOCK_D), 1.0, tl.float32), pairs, acc, input_precision="ieee")
    pairs = tl.reshape(tl.permute(tl.join(hi, lo), (0, 2, 1)), (2 * BLOCK_D, KT))
    return tl.dot(tl.full((16, 2 * BLOCK_D), 1.0, tl.bfloat16), pairs, acc)


@triton.jit
def _lane_id(c, INTERP: tl.constexpr):
    """This thread's lane in its warp, per element of the (BLOCK_D,) vector ``c`` (the interpreter: c itself)."""
    if INTERP:
        lane = c
    else:
        lane = tl.inline_asm_elementwise("mov.u32 $0, %laneid;", "=r,r", [c], dtype=tl.int32, is_pure=True, pack=1)
    return lane


@triton.jit
def _lane_xor(x, o: tl.constexpr, INTERP: tl.constexpr):
    """x as held by the lane whose id differs in bit ``o`` (a butterfly exchange, ``shfl.sync.bfly``); the
    interpreter swaps the elements c and c ^ o of the vector instead."""
    if INTERP:
        pairs = tl.permute(tl.reshape(x, (x.shape[0] // (2 * o), 2, o)), (0, 2, 1))
        a, b = tl.split(pairs)
        y = tl.reshape(tl.permute(tl.join(b, a), (0, 2, 1)), (x.shape[0],))
    else:
        y = tl.inline_asm_elementwise("shfl.sync.bfly.b32 $0, $1, $2, 0x1f, 0xffffffff;", "=r,r,r",
                                      [x.to(tl.int32, bitcast=True), tl.full(x.shape, o, tl.int32)],
                                      dtype=tl.int32, is_pure=True, pack=1)
        y = y.to(tl.float32, bitcast=True)
    return y


@triton.jit
def _shuffle_channel_sums(parts, b_ptr, c_ptr, t0, L, K: tl.constexpr, FIRST: tl.constexpr, BOTH: tl.constexpr,
                          T: tl.constexpr, BLOCK_D: tl.constexpr, INTERP: tl.constexpr, ATOMIC: tl.constexpr):
    """``_store_channel_sums`` with dB's rows at ``b_ptr`` and dC's at ``c_ptr`` (ATOMIC: added to them by
    relaxed fp32 atomics, else stored) (no padding, one lane per channel, BLOCK_D = 32 channels on the 32 lanes
    of one warp, K*T a multiple of 32) in fp32 by a transposing butterfly: the K*T values v[p*T + k] of each lane
    halve in 5 rounds, round o = 16, 8, .., 1 pairing v[i] with v[i + m/2] (m values left): a lane with bit o set
    keeps the upper one, sends the lower one to the lane across bit o and adds what that lane sends. One shuffle and
    one add per value removed (a ``tl.sum`` butterfly takes 5 of each per value), exact fp32 adds; lane l ends with
    the sums over the 32 lanes of v[f + R*l], f < R = K*T/32."""
    vals = ()
    for p in tl.static_range(K):
        cols = _columns(parts[p], T)
        for k in tl.static_range(T):
            vals = vals + (cols[k],)
    lane = _lane_id(tl.arange(0, BLOCK_D), INTERP)
    for r in tl.static_range(5):
        upper = (lane & (16 >> r)) != 0
        kept = ()
        for i in tl.static_range((K * T) // (2 << r)):
            hi = vals[i + (K * T) // (2 << r)]
            send = tl.where(upper, vals[i], hi)
            kept = kept + (tl.where(upper, hi, vals[i]) + _lane_xor(send, 16 >> r, INTERP),)
        vals = kept
    R: tl.constexpr = (K * T) // 32
    for f in tl.static_range(R):
        idx = f + R * lane
        p = FIRST + idx // T
        t = t0 + idx % T
        if BOTH:
            ptrs = tl.where(p % 2 == 0, b_ptr, c_ptr) + (p // 2) * L + t
        else:
            ptrs = b_ptr + p * L + t
        if ATOMIC:
            tl.atomic_add(ptrs, vals[f], mask=t < L, sem="relaxed")
        else:
            tl.store(ptrs, vals[f], mask=t < L)


@triton.jit
def _store_channel_sums(parts, part_ptr, c_part, t0, L, K: tl.constexpr, FIRST: tl.constexpr, N_PARTS: tl.constexpr,
                        BOTH: tl.constexpr, T: tl.constexpr, BLOCK_D: tl.constexpr, INTERP: tl.constexpr,
                        EXACT: tl.constexpr, S: tl.constexpr = 1, NJ: tl.constexpr = 1):
    """Sum K (BLOCK_D, T) tiles of steps t0.. over their channel axis (the lanes) and store the sums of the first
    N_PARTS: tile p holds part FIRST + p, i.e. state FIRST + p (dB or dC alone) or, with BOTH, dB (even parts) and
    dC (odd) of state (FIRST + p) // 2, at ``part_ptr + n * L + t`` (+ ``c_part`` for dC); the rest is padding.
    With S lanes per channel the tiles are (BLOCK_D, S*T), column s*T + w holding lane s's part (state s*NJ + j
    for the tile's entry j) at step w: the product sums each column over the channels alone, so per state.

    The sum over lanes is a matrix product ones(16, 2*BLOCK_D) @ X on the tensor cores (``_ones_dot``), X's rows
    2c and 2c + 1 being channel c's values split into bf16 hi and lo (16 significant bits, relative error <= 2^-17
    per value; the ones are exact; fp32 accumulation): Triton moves X to the MMA operand layout through shared
    memory (stmatrix), every value crossing lanes once, where ``tl.sum`` would run a 5-level shuffle butterfly per
    value. EXACT (fp32 dB/dC): a second product adds the next two bf16 terms of each value (32 significant bits,
    beyond fp32's 24). Row 0 of the (16, K*T) product is stored."""
    W: tl.constexpr = S * T
    x = _join_all(parts, K)
    hi = x.to(tl.bfloat16)
    rest = x - hi.to(tl.float32)
    lo = rest.to(tl.bfloat16)
    sums = _ones_dot(hi, lo, tl.zeros((16, K * W), tl.float32), BLOCK_D, K * W, INTERP)
    if EXACT:
        rest -= lo.to(tl.float32)
        hi = rest.to(tl.bfloat16)
        sums = _ones_dot(hi, (rest - hi.to(tl.float32)).to(tl.bfloat16), sums, BLOCK_D, K * W, INTERP)
    col = tl.arange(0, K * W)[None, :]  # column -> (tile p, step w), see _join_all
    low = col % K
    p = tl.zeros_like(col)
    for b in tl.static_range(6):
        if (1 << b) < K:
            p = p * 2 + ((low >> b) & 1)
    if S == 1:
        t = t0 + col // K
    else:
        t = t0 + (col // K) % T
    valid = (p < N_PARTS) & (t < L)
    p += FIRST
    if BOTH:
        offs = (p % 2) * c_part + (p // 2) * L + t
    else:
        offs = p * L + t
    if S > 1:
        offs += (col // (K * T)) * (NJ * L)  # lane s: states s*NJ ..
    rows = tl.arange(0, 16)[:, None]
    tl.store(part_ptr + offs + rows * 0, sums, mask=(rows == 0) & valid)


@triton.jit
def _bc_block(tile_ptr, lane, NP: tl.constexpr, S: tl.constexpr, T: tl.constexpr):
    """``_bc_tiles`` (T = TM) as one load of each lane's contiguous rows (``_lanes_state_block``): the form the
    pipeliner copies once per warp to shared memory, where the broadcast per-channel loads would take one copy per
    channel. Columns are (1, S), or with S = 1 (1,) to broadcast over the channels."""
    tiles = _lanes_state_block(tile_ptr, lane, NP // S, S, T)
    if S == 1:
        flat = ()
        for j in tl.static_range(NP):
            row = ()
            for k in tl.static_range(T):
                row = row + (tl.reshape(tiles[j][k], (1,)),)
            flat = flat + (row,)
        tiles = flat
    return tiles


@triton.jit
def _part_tile(cols, m2, T: tl.constexpr, S: tl.constexpr):
    """T per-state columns of dB or dC as a BC_DOT tile, zero at masked steps: (BLOCK_D, T), or with S lanes
    (BLOCK_D, S*T), lane s's steps in columns s*T ..."""
    x = tl.where(m2, _from_columns(cols, T), 0.0)
    if S > 1:
        x = tl.reshape(x, (x.shape[0], S * T))
    return x


@triton.jit
def _thread_bwd_tile(h_start, g, acc, t0, L, dmask, pid_b, grp, n_groups, dim,
                     u_row, dt_row, z_row, dout_row, grad_row, du_ptr, ddt_ptr, dz_ptr, dB_ptr, dC_ptr,
                     A2, Bfix, Cfix, Dv, bias, B_tiles, C_tiles, s_ul, s_dl, s_zl,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                     B_VAR: tl.constexpr, C_VAR: tl.constexpr, MASK_T: tl.constexpr,
                     NP: tl.constexpr, T: tl.constexpr, TM: tl.constexpr,
                     part_ptr, c_part, BC_DOT: tl.constexpr, POLY: tl.constexpr, INTERP: tl.constexpr,
                     DOT_COLS: tl.constexpr, lane, S: tl.constexpr = 1, BC_BLOCK: tl.constexpr = False):
    """Gradients of steps t0 .. t0+T-1 given the state before t0 (``h_start``) and the adjoint carry ``g``
    (a_{t+1} * G_{t+1} from the step after the tile). Returns the carry for the tile before and the accumulators
    ``acc`` = (dA tuple, dB-fixed tuple, dC-fixed tuple, dD, dbias).

    Variable dB/dC: without BC_DOT, sums over the program's channels (a shuffle butterfly per value) go to
    (batch, G, NP, L) with atomics; with BC_DOT, ``_store_channel_sums`` stores them with plain stores at
    ``part_ptr`` (this program's (NP, L) block of dB partials; dC's at + ``c_part``), one product per DOT_COLS
    columns (tiles x steps; 0: one for the whole tile). POLY: states whose exponentials run on the FMA pipe.

    S lanes per channel (``lane``: arange(S)): the state tuples (h, g, A2, fixed B/C, the dA/dB/dC accumulators)
    hold NP/S (BLOCK_D, S) entries, lane s's entry j being state s*NJ + j; the per-channel rows (dmask, u_row, ...,
    bias, Dv, dD/dbias) are (BLOCK_D, S), each lane loading and computing its channel's values, so the tiles are
    (BLOCK_D, S, T) and their columns (BLOCK_D, S), in the layout of the states (no lane shuffles); per-step sums
    over the states are summed over the lanes once per step (``_state_sum``); the BC_DOT tiles are (BLOCK_D, S*T)."""
    NJ: tl.constexpr = NP // S
    dA_acc, dBf_acc, dCf_acc, dD_acc, dbias_acc = acc
    tt, t, m2, u, dt_pre, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS,
                                            MASK_T, T)
    dtu = dt * u
    dout = tl.load(_per_step(dout_row) + t[None, :], mask=m2, other=0.0).to(tl.float32)
    zero_cols = _per_step(tl.zeros_like(dmask.to(tl.int32)))
    tile_offs = (t0 // TM) * (NP * TM)
    if T != TM:
        tile_offs += t0 % TM
    if B_VAR:
        if BC_BLOCK:
            Bt = _bc_block(B_tiles + tile_offs, lane, NP, S, T)
        else:
            Bt = _bc_tiles(B_tiles + tile_offs, zero_cols, tt, lane, NP, S, T, TM)
    else:
        Bt = Bfix
    if C_VAR:
        if BC_BLOCK:
            Ct = _bc_block(C_tiles + tile_offs, lane, NP, S, T)
        else:
            Ct = _bc_tiles(C_tiles + tile_offs, zero_cols, tt, lane, NP, S, T, TM)
    dt_cols = _columns(dt, T)
    dtu_cols = _columns(dtu, T)
    hs = _advance(h_start, dt_cols, dtu_cols, A2, Bfix, Bt, B_VAR, NJ, T, POLY)

    if HAS_Z:  # y = C.h + D u is needed for dz; dy = dout * silu(z)
        ys = ()
        for k in tl.static_range(T):
            y_k = tl.zeros_like(A2[0])
            for n in tl.static_range(NJ):
                if C_VAR:
                    y_k += hs[k][n] * Ct[n][k]
                else:
                    y_k += hs[k][n] * Cfix[n]
            ys = ys + (_state_sum(y_k, S),)
        y = _from_columns(ys, T)
        if HAS_D:
            y += _per_step(Dv) * u
        zz = tl.load(_per_step(z_row) + t[None, :] * s_zl, mask=m2, other=0.0).to(tl.float32)
        sig = tl.sigmoid(zz)
        tl.store(dz_ptr + _per_step(grad_row) + t[None, :], dout * y * sig * (1.0 + zz * (1.0 - sig)), mask=m2)
        dy = dout * zz * sig
    else:
        dy = dout
    if HAS_D:
        dD_acc += _sum_steps(dy * u)
    dy_cols = _columns(dy, T)
    u_cols = _columns(u, T)

    # Per state n (outer, unrolled), the adjoint walks the tile backwards: G_k = C_k dy_k + a_{k+1} G_{k+1}.
    gB = ()  # per step: sum_n G_k[n] B_k[n] and sum_n G_k[n] A[n] a_k[n] h_{k-1}[n]
    gAh = ()
    for _ in tl.static_range(T):
        gB = gB + (tl.zeros_like(A2[0]),)
        gAh = gAh + (tl.zeros_like(A2[0]),)
    gn = ()
    dAn = ()
    dBn = ()
    dCn = ()
    tmask = t < L
    parts = ()  # BC_DOT: per-channel (BLOCK_D, S*T) dB/dC tiles, state by state (dB before dC)
    PER_N: tl.constexpr = B_VAR + C_VAR
    W: tl.constexpr = S * T  # columns of a part tile
    if DOT_COLS == 0 or DOT_COLS // W >= PER_N * NJ:
        DOT_PARTS: tl.constexpr = PER_N * NJ
    elif DOT_COLS // W <= PER_N:
        DOT_PARTS: tl.constexpr = PER_N
    else:
        DOT_PARTS: tl.constexpr = DOT_COLS // W
    K_PARTS: tl.constexpr = DOT_PARTS if DOT_PARTS * W >= 16 else 16 // W  # a product needs >= 16 columns
    for n in tl.static_range(NJ):
        G_n = g[n]
        dA_n = dA_acc[n]
        dBf_n = tl.zeros_like(A2[0])
        dCf_n = tl.zeros_like(A2[0])
        gB_c = ()
        gAh_c = ()
        dB_c = ()
        dC_c = ()
        for k in tl.static_range(T - 1, -1, -1):
            if k > 0:
                h_prev = hs[k - 1][n]
            else:
                h_prev = h_start[n]
            if C_VAR:
                c_kn = Ct[n][k]
            else:
                c_kn = Cfix[n]
            if B_VAR:
                b_kn = Bt[n][k]
            else:
                b_kn = Bfix[n]
            a = _bwd_exp2(dt_cols[k] * A2[n], n, POLY)
            G = G_n + c_kn * dy_cols[k]
            G_n = a * G  # the carry to the step before, and a factor of the dA term G a h_prev
            gah = G_n * h_prev
            dA_n += gah * dt_cols[k]
            gAh_c = (gah * A2[n],) + gAh_c
            gB_c = (G * b_kn,) + gB_c
            dB_c = (G * dtu_cols[k],) + dB_c
            dC_c = (hs[k][n] * dy_cols[k],) + dC_c
        gn = gn + (G_n,)
        dAn = dAn + (dA_n,)
        new_gB = ()
        new_gAh = ()
        for k in tl.static_range(T):
            new_gB = new_gB + (gB[k] + gB_c[k],)
            new_gAh = new_gAh + (gAh[k] + gAh_c[k],)
            if not B_VAR:
                dBf_n += dB_c[k]
            if not C_VAR:
                dCf_n += dC_c[k]
        gB = new_gB
        gAh = new_gAh
        bc_row = ((pid_b * n_groups + grp) * NP + n) * L + t
        if B_VAR:  # input-dependent dB/dC: sum over this program's channels, then one atomic per element
            if BC_DOT:
                parts = parts + (_part_tile(dB_c, m2, T, S),)
                if C_VAR:
                    parts = parts + (_part_tile(dC_c, m2, T, S),)
            else:
                tl.atomic_add(dB_ptr + bc_row, tl.sum(tl.where(m2, _from_columns(dB_c, T), 0.0), axis=0),
                              mask=tmask, sem="relaxed")
        else:
            dBn = dBn + (dBf_acc[n] + dBf_n,)
        if C_VAR:
            if BC_DOT:
                if not B_VAR:
                    parts = parts + (_part_tile(dC_c, m2, T, S),)
            else:
                tl.atomic_add(dC_ptr + bc_row, tl.sum(tl.where(m2, _from_columns(dC_c, T), 0.0), axis=0),
                              mask=tmask, sem="relaxed")
        else:
            dCn = dCn + (dCf_acc[n] + dCf_n,)
        if BC_DOT:  # a product per DOT_PARTS tiles (fewer live registers than one at the end)
            if ((n + 1) * PER_N) % DOT_PARTS == 0:
                if BC_DOT == 4:  # straight into dB/dC, (batch, G, NP, L)
                    rows = (pid_b * n_groups + grp) * NP * L
                    _shuffle_channel_sums(parts, dB_ptr + rows, dC_ptr + rows, t0, L, DOT_PARTS,
                                          (n + 1) * PER_N - DOT_PARTS, B_VAR and C_VAR, T, dmask.shape[0], INTERP,
                                          True)
                elif BC_DOT == 3:
                    _shuffle_channel_sums(parts, part_ptr, part_ptr + c_part, t0, L, DOT_PARTS,
                                          (n + 1) * PER_N - DOT_PARTS, B_VAR and C_VAR, T, dmask.shape[0], INTERP,
                                          False)
                else:
                    for _pad in tl.static_range(K_PARTS - DOT_PARTS):
                        parts = parts + (tl.zeros((dmask.shape[0], W), tl.float32),)
                    _store_channel_sums(parts, part_ptr, c_part, t0, L, K_PARTS, (n + 1) * PER_N - DOT_PARTS,
                                        DOT_PARTS, B_VAR and C_VAR, T, dmask.shape[0], INTERP, BC_DOT == 2, S, NJ)
                parts = ()
    g = gn
    dA_acc = dAn
    if not B_VAR:
        dBf_acc = dBn
    if not C_VAR:
        dCf_acc = dCn
    du_cols = ()
    ddt_cols = ()
    for k in tl.static_range(T):
        gB_k = _state_sum(gB[k], S)
        du_k = dt_cols[k] * gB_k
        if HAS_D:
            du_k += Dv * dy_cols[k]
        du_cols = du_cols + (du_k,)
        ddt_cols = ddt_cols + (u_cols[k] * gB_k + _state_sum(gAh[k], S) * 0.6931471805599453,)  # A2 = A log2(e)
    ddt = _from_columns(ddt_cols, T)
    if SOFTPLUS:
        ddt = ddt * tl.sigmoid(dt_pre)
    ddt = tl.where(m2, ddt, 0.0)
    dbias_acc += _sum_steps(ddt)
    tl.store(du_ptr + _per_step(grad_row) + t[None, :], _from_columns(du_cols, T), mask=m2)
    tl.store(ddt_ptr + _per_step(grad_row) + t[None, :], ddt, mask=m2)
    return g, (dA_acc, dBf_acc, dCf_acc, dD_acc, dbias_acc)


@triton.jit
def _rerun_tile(h, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, lane, u_row, dt_row, z_row, B_tiles, C_tiles,
                s_ul, s_dl, s_zl, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                SOFTPLUS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr, MASK_T: tl.constexpr,
                NP: tl.constexpr, S: tl.constexpr, T: tl.constexpr, TM: tl.constexpr, POLY: tl.constexpr,
                BC_BLOCK: tl.constexpr = False):
    """The state tuple after steps t0 .. t0+T-1 (the backward's forward re-run): ``_thread_tile``'s LOCAL pass, or
    with S lanes per channel (or BC_BLOCK: B loaded by ``_bc_block``) ``_advance`` on NP/S entries."""
    if S == 1 and not BC_BLOCK:
        h, _ = _thread_tile(h, bias, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, u_row, dt_row, z_row, u_row, B_tiles,
                            C_tiles, s_ul, s_dl, s_zl, s_ul, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, True,
                            MASK_T, NP, T, TM)
    else:
        tt, _, _, u, _, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS,
                                          MASK_T, T)
        tile_offs = (t0 // TM) * (NP * TM)
        if T != TM:
            tile_offs += t0 % TM
        if B_VAR and BC_BLOCK:
            Bt = _bc_block(B_tiles + tile_offs, lane, NP, S, T)
        elif B_VAR:
            Bt = _bc_tiles(B_tiles + tile_offs, _per_step(tl.zeros_like(dmask.to(tl.int32))), tt, lane, NP, S, T, TM)
        else:
            Bt = Bfix
        h = _advance(h, _columns(dt, T), _columns(dt * u, T), A2, Bfix, Bt, B_VAR, NP // S, T, POLY)[T - 1]
    return h


@triton.jit
def _staged_rerun_step(i, h, t_chunk, scr, A2, Bfix, Cfix, Dv, bias, L, dcmask, lane, u_row, dt_row, z_row, B_tiles,
                       C_tiles, s_ul, s_dl, s_zl, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                       SOFTPLUS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr, NP: tl.constexpr,
                       S: tl.constexpr, T: tl.constexpr, POLY: tl.constexpr, BLOCK_D: tl.constexpr):
    """Full tile i of the STAGES re-run loop of ``_thread_bwd_kernel``: park the state in scratch slot i, then
    advance it over the tile (B as one block, ``_bc_block``)."""
    for n in tl.static_range(NP // S):
        tl.store(scr + (i * (NP // S) + n) * (BLOCK_D * S), h[n])
    return _rerun_tile(h, A2, Bfix, Cfix, Dv, bias, t_chunk + i * T, L, dcmask, lane, u_row, dt_row, z_row, B_tiles,
                       C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, False, NP, S, T, T,
                       POLY, True)


@triton.jit
def _staged_bwd_step(i, g, acc, n_full, t_chunk, scr, L, dcmask, pid_b, grp, n_groups, dim, u_row, dt_row, z_row,
                     dout_row, grad_row, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias,
                     B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                     HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                     NP: tl.constexpr, T: tl.constexpr, part_blk, c_part, BC_DOT: tl.constexpr, POLY: tl.constexpr,
                     INTERP: tl.constexpr, DOT_COLS: tl.constexpr, lane, S: tl.constexpr, BLOCK_D: tl.constexpr):
    """Iteration i of the STAGES backward tile loop of ``_thread_bwd_kernel``: full tile j = n_full-1-i (an
    ascending loop, for ``tl.range``, over the tiles last to first), from its parked start state."""
    j = n_full - 1 - i
    h_start = ()
    for n in tl.static_range(NP // S):
        h_start = h_start + (tl.load(scr + (j * (NP // S) + n) * (BLOCK_D * S)),)
    return _thread_bwd_tile(h_start, g, acc, t_chunk + j * T, L, dcmask, pid_b, grp, n_groups, dim, u_row, dt_row,
                            z_row, dout_row, grad_row, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, A2, Bfix, Cfix,
                            Dv, bias, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR,
                            C_VAR, False, NP, T, T, part_blk, c_part, BC_DOT, POLY, INTERP, DOT_COLS, lane, S, True)


@triton.jit
def _thread_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr, dout_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, n_chunks, group_size, dstate, n_groups,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    part_ptr, c_part, seg_g_ptr, seg_dt_ptr, chunks_per_seg, n_seg,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr, TM: tl.constexpr,
    BC_DOT: tl.constexpr = False, POLY: tl.constexpr = 0, INTERP: tl.constexpr = False, DOT_COLS: tl.constexpr = 0,
    S: tl.constexpr = 1, STAGES: tl.constexpr = 0, EVEN_D: tl.constexpr = False,
):
    """Backward of the thread forward, one lane per channel (S lanes: see below): chunks last to first; per chunk
    the states are recomputed from the saved chunk-start state with the state at every tile start parked in a
    private scratch (CHUNK/T + T entries of (NP, BLOCK_D) fp32, L1/L2-resident), then tiles last to first
    recompute their T states in registers and walk the adjoint back (``_thread_bwd_tile``). dout and the gradients
    du/ddelta/dz are contiguous (batch, dim, L); dA/dD/dbias and fixed dB/dC are per-batch partials; variable
    dB/dC are fp32 (batch, G, NP, L) accumulated with one atomic per element per program, or with BC_DOT
    per-program sums (``_store_channel_sums``) stored to ``part_ptr``: (batch, n_dblocks, NP, L) fp32 for dB, the
    same for dC at + ``c_part``, which the caller sums over each group's blocks; BC_DOT = 2 sums to fp32 accuracy
    (more bf16 terms per value); BC_DOT = 3 sums by a shuffle butterfly in fp32 (``_shuffle_channel_sums``: one
    lane per channel, 32-channel programs, DOT_COLS a multiple of 32 or 0), BC_DOT = 4 the same added to dB/dC
    ((batch, G, NP, L) fp32, zeroed) by relaxed atomics instead of stored as partials. POLY: see
    ``_thread_bwd_tile``.

    Sequence segments (program axis 2, ``chunks_per_seg`` chunks each, ``n_seg`` > 1): a program walks only its
    segment; its adjoint carry comes from the later segments' zero-carry carries and delta sums (``seg_g``
    (batch, n_seg, dim, NP), ``seg_dt`` (batch, n_seg, dim), from ``_thread_bwd_carry_kernel``) folded as
    ``g <- g_local[s] + exp(A sum(delta)[s]) g`` from the last segment down. The per-channel partials (dA, dD,
    dbias, fixed dB/dC) are then per (batch, segment): rows pid_b * n_seg + seg.

    S lanes per channel (S = 2 with BLOCK_D = 16 keeps a one-warp program; as ``_thread_lanes_fwd_kernel``): each
    lane holds NP/S states of its channel (lane s: states s*NJ ..), halving the registers per lane for twice the
    warps; per-state work is split over the lanes, per-step sums over the states take one cross-lane combine each.
    Variable dB/dC need BC_DOT (its products sum per state).

    STAGES > 0 (needs T = TM): the full tiles of both per-chunk loops run as ascending ``tl.range(num_stages=STAGES)``
    loops (the backward one mapped to tiles last to first), so that Triton's pipeliner issues the loads of the next
    tiles as asynchronous copies to shared memory while a tile computes; B/C tiles are loaded as one block
    (``_bc_block``); the one-step tail runs in plain loops around them. Under the interpreter (INTERP, which cannot
    run ``tl.range`` to a runtime bound) the same loops run as while loops. EVEN_D: dim is a multiple of BLOCK_D."""
    tl.static_assert(STAGES == 0 or T == TM, "STAGES: whole B/C tiles (T = TM)")
    tl.static_assert(S == 1 or BC_DOT != 0 or not (B_VAR or C_VAR), "S lanes per channel: variable dB/dC need BC_DOT")
    NJ: tl.constexpr = NP // S
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    seg = tl.program_id(2)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    lane = tl.arange(0, S)
    dmask = d < dim
    if EVEN_D:  # dim a multiple of BLOCK_D: a constant mask, so that full tiles compile without selects
        dmask = tl.full((BLOCK_D,), 1, tl.int1)
    dmask_s = _per_state(dmask, S)
    grp = (pid_d * BLOCK_D) // group_size

    if S == 1:
        A2, Bfix, Cfix = _state_params(A_ptr, B_ptr, C_ptr, d, dmask, dstate, s_Ad, s_An, s_Bb, s_Bn, s_Cb, s_Cn,
                                       B_VAR, C_VAR, NP)
    else:
        A2, Bfix, Cfix = _lanes_state_params(A_ptr, B_ptr, C_ptr, d, dmask, lane, dstate, s_Ad, s_An, s_Bb, s_Bn,
                                             s_Cb, s_Cn, B_VAR, C_VAR, NJ, S)
    zero_acc = ()
    for _n in tl.static_range(NJ):
        zero_acc = zero_acc + (tl.zeros_like(A2[0]),)
    dc = d  # the channels of the per-step values: with S lanes (BLOCK_D, S), each lane loading its channel's
    dcmask = dmask
    if S > 1:
        dc = tl.broadcast_to(d[:, None], (BLOCK_D, S))
        dcmask = dc < dim
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, dc, dcmask, HAS_BIAS, HAS_D)
    acc = (zero_acc, zero_acc, zero_acc, tl.zeros(dc.shape, dtype=tl.float32), tl.zeros(dc.shape, dtype=tl.float32))
    g = zero_acc
    s = n_seg - 1
    while s > seg:  # the adjoint carry into this segment from the later ones
        dts = _per_state(tl.load(seg_dt_ptr + (pid_b * n_seg + s) * dim + d, mask=dmask, other=0.0), S)
        gn = ()
        for n in tl.static_range(NJ):
            gl = tl.load(seg_g_ptr + _state_entry(((pid_b * n_seg + s) * dim + d) * NP, lane, n, NJ, S),
                         mask=dmask_s, other=0.0)
            gn = gn + (gl + tl.exp2(dts * A2[n]) * g[n],)
        g = gn
        s -= 1

    u_row = u_ptr + pid_b * s_ub + dc * s_ud
    dt_row = delta_ptr + pid_b * s_db + dc * s_dd
    z_row = z_ptr + pid_b * s_zb + dc * s_zd
    grad_row = pid_b * dim * L + dc * L
    dout_row = dout_ptr + grad_row
    B_tiles = B_ptr + pid_b * s_Bb + grp * s_Bg
    C_tiles = C_ptr + pid_b * s_Cb + grp * s_Cg
    n_slots = CHUNK // T + T
    cells = tl.arange(0, BLOCK_D)  # a state entry's scratch cells
    if S > 1:
        cells = cells[:, None] + lane[None, :] * BLOCK_D
    scr = scratch_ptr + ((pid_b * tl.num_programs(1) + pid_d) * n_seg + seg) * (n_slots * NP * BLOCK_D) + cells
    part_blk = part_ptr + (pid_b * tl.num_programs(1) + pid_d).to(tl.int64) * (NP * L)

    c_first = seg * chunks_per_seg
    c = tl.minimum(c_first + chunks_per_seg, n_chunks) - 1
    while c >= c_first:
        h = ()
        st_row = ((pid_b * dim + d) * n_chunks + (c - 1)) * NP
        for n in tl.static_range(NJ):
            h = h + (tl.load(states_ptr + _state_entry(st_row, lane, n, NJ, S), mask=dmask_s & (c > 0), other=0.0),)
        n_full = (tl.minimum((c + 1) * CHUNK, L) - c * CHUNK) // T
        n_tail = tl.minimum((c + 1) * CHUNK, L) - c * CHUNK - n_full * T
        if STAGES == 0:
            # forward through the chunk, parking the state at every tile (and tail step) start
            j = 0
            while j < n_full + n_tail:
                for n in tl.static_range(NJ):
                    tl.store(scr + (j * NJ + n) * (BLOCK_D * S), h[n])
                if j < n_full:
                    h = _rerun_tile(h, A2, Bfix, Cfix, Dv, bias, c * CHUNK + j * T, L, dcmask, lane, u_row, dt_row,
                                    z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR,
                                    C_VAR, False, NP, S, T, TM, POLY)
                else:
                    h = _rerun_tile(h, A2, Bfix, Cfix, Dv, bias, c * CHUNK + n_full * T + (j - n_full), L, dcmask, lane,
                                    u_row, dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS,
                                    SOFTPLUS, B_VAR, C_VAR, True, NP, S, 1, TM, POLY)
                j += 1
            # tiles last to first
            j = n_full + n_tail - 1
            while j >= 0:
                h_start = ()
                for n in tl.static_range(NJ):
                    h_start = h_start + (tl.load(scr + (j * NJ + n) * (BLOCK_D * S)),)
                if j < n_full:
                    g, acc = _thread_bwd_tile(h_start, g, acc, c * CHUNK + j * T, L, dcmask, pid_b, grp, n_groups, dim,
                                              u_row, dt_row, z_row, dout_row, grad_row, du_ptr, ddelta_ptr, dz_ptr,
                                              dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias, B_tiles, C_tiles,
                                              s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, False,
                                              NP, T, TM, part_blk, c_part, BC_DOT, POLY, INTERP, DOT_COLS, lane, S)
                else:
                    g, acc = _thread_bwd_tile(h_start, g, acc, c * CHUNK + n_full * T + (j - n_full), L, dcmask, pid_b,
                                              grp, n_groups, dim, u_row, dt_row, z_row, dout_row, grad_row, du_ptr,
                                              ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias, B_tiles,
                                              C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR,
                                              C_VAR, True, NP, 1, TM, part_blk, c_part, BC_DOT, POLY, INTERP,
                                              DOT_COLS, lane, S)
                j -= 1
        else:
            t_chunk = c * CHUNK
            if INTERP:
                i = 0
                while i < n_full:
                    h = _staged_rerun_step(i, h, t_chunk, scr, A2, Bfix, Cfix, Dv, bias, L, dcmask, lane, u_row,
                                           dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS,
                                           SOFTPLUS, B_VAR, C_VAR, NP, S, T, POLY, BLOCK_D)
                    i += 1
            else:
                for i in tl.range(0, n_full, num_stages=STAGES):
                    h = _staged_rerun_step(i, h, t_chunk, scr, A2, Bfix, Cfix, Dv, bias, L, dcmask, lane, u_row,
                                           dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS,
                                           SOFTPLUS, B_VAR, C_VAR, NP, S, T, POLY, BLOCK_D)
            j = n_full
            while j < n_full + n_tail:
                for n in tl.static_range(NJ):
                    tl.store(scr + (j * NJ + n) * (BLOCK_D * S), h[n])
                h = _rerun_tile(h, A2, Bfix, Cfix, Dv, bias, t_chunk + n_full * T + (j - n_full), L, dcmask, lane,
                                u_row, dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS,
                                SOFTPLUS, B_VAR, C_VAR, True, NP, S, 1, TM, POLY)
                j += 1
            tl.debug_barrier()  # the parked states, stored lane by lane, before copies that may cross lanes
            j = n_full + n_tail - 1
            while j >= n_full:
                h_start = ()
                for n in tl.static_range(NJ):
                    h_start = h_start + (tl.load(scr + (j * NJ + n) * (BLOCK_D * S)),)
                g, acc = _thread_bwd_tile(h_start, g, acc, t_chunk + n_full * T + (j - n_full), L, dcmask, pid_b,
                                          grp, n_groups, dim, u_row, dt_row, z_row, dout_row, grad_row, du_ptr,
                                          ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias, B_tiles,
                                          C_tiles, s_ul, s_dl, s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR,
                                          C_VAR, True, NP, 1, TM, part_blk, c_part, BC_DOT, POLY, INTERP,
                                          DOT_COLS, lane, S)
                j -= 1
            if INTERP:
                i = 0
                while i < n_full:
                    g, acc = _staged_bwd_step(i, g, acc, n_full, t_chunk, scr, L, dcmask, pid_b, grp, n_groups, dim,
                                              u_row, dt_row, z_row, dout_row, grad_row, du_ptr, ddelta_ptr, dz_ptr,
                                              dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias, B_tiles, C_tiles, s_ul, s_dl,
                                              s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, NP, T, part_blk,
                                              c_part, BC_DOT, POLY, INTERP, DOT_COLS, lane, S, BLOCK_D)
                    i += 1
            else:
                for i in tl.range(0, n_full, num_stages=STAGES):
                    g, acc = _staged_bwd_step(i, g, acc, n_full, t_chunk, scr, L, dcmask, pid_b, grp, n_groups, dim,
                                              u_row, dt_row, z_row, dout_row, grad_row, du_ptr, ddelta_ptr, dz_ptr,
                                              dB_ptr, dC_ptr, A2, Bfix, Cfix, Dv, bias, B_tiles, C_tiles, s_ul, s_dl,
                                              s_zl, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, NP, T, part_blk,
                                              c_part, BC_DOT, POLY, INTERP, DOT_COLS, lane, S, BLOCK_D)
            tl.debug_barrier()  # the next chunk's re-run overwrites the slots
        c -= 1

    dA_acc, dBf_acc, dCf_acc, dD_acc, dbias_acc = acc
    row = pid_b * n_seg + seg
    part = (row * dim + d) * NP
    for n in tl.static_range(NJ):
        offs = _state_entry(part, lane, n, NJ, S)
        tl.store(dA_ptr + offs, dA_acc[n], mask=dmask_s)
        if not B_VAR:
            tl.store(dB_ptr + offs, dBf_acc[n], mask=dmask_s)
        if not C_VAR:
            tl.store(dC_ptr + offs, dCf_acc[n], mask=dmask_s)
    if HAS_D:
        tl.store(dD_ptr + row * dim + dc, dD_acc, mask=dcmask)
    if HAS_BIAS:
        tl.store(dbias_ptr + row * dim + dc, dbias_acc, mask=dcmask)


@triton.jit
def _carry_tile(g, dtsum, A2, Cfix, t0, L, dmask, u_row, dt_row, z_row, dout_row, C_tiles, s_ul, s_dl, s_zl, bias,
                HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, C_VAR: tl.constexpr,
                MASK_T: tl.constexpr, NP: tl.constexpr, T: tl.constexpr, TM: tl.constexpr, POLY: tl.constexpr):
    """The adjoint carry through steps t0+T-1 .. t0 alone: g <- a_t (C_t dy_t + g), and the sum of delta."""
    tt, t, m2, u, _, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS, MASK_T, T)
    dtsum += tl.sum(dt, axis=1)
    dy = tl.load(dout_row[:, None] + t[None, :], mask=m2, other=0.0).to(tl.float32)
    if HAS_Z:
        zz = tl.load(z_row[:, None] + t[None, :] * s_zl, mask=m2, other=0.0).to(tl.float32)
        dy = dy * zz * tl.sigmoid(zz)
    if C_VAR:
        tile_offs = (t0 // TM) * (NP * TM)
        if T != TM:
            tile_offs += t0 % TM
        Ct = _state_tiles(C_tiles + tile_offs, tl.zeros_like(dmask.to(tl.int32))[:, None], tt, NP, T, TM)
    dt_cols = _columns(dt, T)
    dy_cols = _columns(dy, T)
    gn = ()
    for n in tl.static_range(NP):
        g_n = g[n]
        for k in tl.static_range(T - 1, -1, -1):
            if C_VAR:
                c_kn = Ct[n][k]
            else:
                c_kn = Cfix[n]
            g_n = _bwd_exp2(dt_cols[k] * A2[n], n, POLY) * (g_n + c_kn * dy_cols[k])
        gn = gn + (g_n,)
    return gn, dtsum


@triton.jit
def _thread_bwd_carry_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr, bias_ptr, dout_ptr, seg_g_ptr, seg_dt_ptr,
    dim, L, n_chunks, chunks_per_seg, n_seg, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr, TM: tl.constexpr,
    POLY: tl.constexpr,
):
    """First pass of the segmented thread backward, segments 1 .. n_seg-1 (program axis 2 + 1): walk the segment
    last step to first from a zero adjoint carry with only ``g <- a_t (C_t dy_t + g)`` (no states, no gradients);
    write the carry it leaves, (batch, n_seg, dim, NP) ``seg_g``, and the segment's sum of delta, ``seg_dt``."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    seg = tl.program_id(2) + 1
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < dim
    grp = (pid_d * BLOCK_D) // group_size
    A2, _, Cfix = _state_params(A_ptr, B_ptr, C_ptr, d, dmask, dstate, s_Ad, s_An, s_Bb, s_Bn, s_Cb, s_Cn,
                                True, C_VAR, NP)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    g = ()
    for _n in tl.static_range(NP):
        g = g + (tl.zeros([BLOCK_D], dtype=tl.float32),)
    dtsum = tl.zeros([BLOCK_D], dtype=tl.float32)
    u_row = u_ptr + pid_b * s_ub + d * s_ud
    dt_row = delta_ptr + pid_b * s_db + d * s_dd
    z_row = z_ptr + pid_b * s_zb + d * s_zd
    dout_row = dout_ptr + pid_b * dim * L + d * L
    C_tiles = C_ptr + pid_b * s_Cb + grp * s_Cg
    t_start = seg * chunks_per_seg * CHUNK
    t_end = tl.minimum((seg + 1) * chunks_per_seg * CHUNK, L)
    n_full = (t_end - t_start) // T
    t0 = t_end - 1
    while t0 >= t_start + n_full * T:  # the sequence's last partial tile, one masked step at a time
        g, dtsum = _carry_tile(g, dtsum, A2, Cfix, t0, L, dmask, u_row, dt_row, z_row, dout_row, C_tiles, s_ul,
                               s_dl, s_zl, bias, HAS_Z, HAS_BIAS, SOFTPLUS, C_VAR, True, NP, 1, TM, POLY)
        t0 -= 1
    j = n_full - 1
    while j >= 0:
        g, dtsum = _carry_tile(g, dtsum, A2, Cfix, t_start + j * T, L, dmask, u_row, dt_row, z_row, dout_row,
                               C_tiles, s_ul, s_dl, s_zl, bias, HAS_Z, HAS_BIAS, SOFTPLUS, C_VAR, False, NP, T, TM,
                               POLY)
        j -= 1
    row = ((pid_b * n_seg + seg) * dim + d) * NP
    for n in tl.static_range(NP):
        tl.store(seg_g_ptr + row + n, g[n], mask=dmask)
    tl.store(seg_dt_ptr + (pid_b * n_seg + seg) * dim + d, dtsum, mask=dmask)


# --------------------------------------------------------------------------------- forward variants (opt-in)
# Two ways past the thread forward's limits at (8, 2048, 2048, 16), both selected by name in selective_scan_triton
# (THREAD_VARIANTS) and off by default until timed on the GPU:
# * lane split (S in 1, 2, 4): the NP states of a channel live on S lanes, NP/S = NJ per lane, state
#   n = s*NJ + j on lane s (this order keeps A, B, C and the states in one layout, that of the B/C tile loads,
#   with no lane shuffles). S times more warps, so no sequence segments (and no second pass) are needed to fill
#   the GPU; y_t costs a log2(S)-shuffle sum over the S lanes.
# * software exponentials (POLY of a lane's NJ states): 2^x on the FMA pipe (``_exp2_fma``) instead of MUFU.EX2,
#   which has 16 lanes per SM against 128 for FFMA: FlashAttention-4's split of the exponentials between pipes.


@triton.jit
def _exp2_fma(x):
    """2^x with FADD/FFMA and one integer shift-add, no MUFU: Cody-Waite split x = k + f (k = round(x), |f| <= 1/2,
    by the round-to-nearest magic constant), 2^f by a degree-5 polynomial with p(0) = 1 exactly (minimax in
    relative error on [-1/2, 1/2]: 9.1e-8 before fp32 rounding, 1.6 ulp with it; Lawson-weighted least squares on
    Chebyshev nodes), then k added to the exponent bits.
    For x < 128 (the exponentials of the scan are <= 1; x >= 128 would wrap, not give inf). Clamped below at
    -127: 2^x is exactly 0 there and below 2^-126 (not accurate, but no garbage) under -126."""
    x = tl.maximum(x, -127.0)
    r = x + 12582912.0
    f = x - (r - 12582912.0)
    p = 0.001326472731307149 * f + 0.009671512991189957
    p = p * f + 0.05550733581185341
    p = p * f + 0.24022242426872253
    p = p * f + 0.6931470036506653
    p = p * f + 1.0
    # the magic constant's own bits (0x4B400000) vanish in the shift: r's bits << 23 == k << 23 (mod 2^32)
    bits = p.to(tl.int32, bitcast=True) + (r.to(tl.int32, bitcast=True) << 23)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _lanes_state_params(A_ptr, B_ptr, C_ptr, d, dmask, lane, dstate, s_Ad, s_An, s_Bb, s_Bn, s_Cb, s_Cn,
                        B_VAR: tl.constexpr, C_VAR: tl.constexpr, NJ: tl.constexpr, S: tl.constexpr):
    """``_state_params`` on (BLOCK_D, S) tensors: entry j holds states lane*NJ + j (zeros for n >= dstate)."""
    A2 = ()
    Bfix = ()
    Cfix = ()
    for j in tl.static_range(NJ):
        n = lane[None, :] * NJ + j
        nm = dmask[:, None] & (n < dstate)
        A2 = A2 + (tl.load(A_ptr + d[:, None] * s_Ad + n * s_An, mask=nm, other=0.0) * 1.4426950408889634,)
        if not B_VAR:
            Bfix = Bfix + (tl.load(B_ptr + d[:, None] * s_Bb + n * s_Bn, mask=nm, other=0.0).to(tl.float32),)
        if not C_VAR:
            Cfix = Cfix + (tl.load(C_ptr + d[:, None] * s_Cb + n * s_Cn, mask=nm, other=0.0).to(tl.float32),)
    return A2, Bfix, Cfix


@triton.jit
def _lanes_state_tiles(tile_ptr, zero_rows, lane, NJ: tl.constexpr, S: tl.constexpr, T: tl.constexpr,
                       TM: tl.constexpr, VEC: tl.constexpr):
    """T steps of B or C as NJ tuples of T (BLOCK_D, S) columns: lane s of entry j holds row s*NJ + j. Loaded in
    pieces of VEC steps (16 bytes): a wider tile would be split over lanes by the compiler, then shuffled back."""
    PIECE: tl.constexpr = VEC if VEC < T else T
    tp = tl.arange(0, PIECE)
    tiles = ()
    for j in tl.static_range(NJ):
        rows = tile_ptr + zero_rows + (lane * NJ + j)[None, :, None] * TM
        cols = ()
        for p in tl.static_range(T // PIECE):
            cols = cols + _columns(tl.load(rows + p * PIECE + tp[None, None, :]), PIECE)
        tiles = tiles + (cols,)
    return tiles


@triton.jit
def _lanes_steps(h, A2, Bfix, Cfix, tt, dt, dtu, Bt, Ct, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                 NJ: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr):
    """The T unrolled steps of a tile: (state tuple after them, y before D and z as a (BLOCK_D, T) tile)."""
    dt_cols = _columns(dt, T)
    dtu_cols = _columns(dtu, T)
    y = tl.zeros_like(dt)
    for k in tl.static_range(T):
        sel = (tt == k)[None, :]
        dt_k = dt_cols[k][:, None]
        dtu_k = dtu_cols[k][:, None]
        y_even = tl.zeros_like(A2[0])  # two partial sums over the states: half the dependent chain
        y_odd = tl.zeros_like(A2[0])
        hn = ()
        for j in tl.static_range(NJ):
            if B_VAR:
                b_kj = Bt[j][k]
            else:
                b_kj = Bfix[j]
            if j < POLY:
                a = _exp2_fma(dt_k * A2[j])
            else:
                a = tl.exp2(dt_k * A2[j])
            h_j = a * h[j] + dtu_k * b_kj
            hn = hn + (h_j,)
            if C_VAR:
                c_kj = Ct[j][k]
            else:
                c_kj = Cfix[j]
            if j % 2 == 0:
                y_even += h_j * c_kj
            else:
                y_odd += h_j * c_kj
        h = hn
        y_lanes = y_even + y_odd
        y = tl.where(sel, tl.sum(y_lanes, axis=1)[:, None], y)
    return h, y


@triton.jit
def _lanes_tile(h, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, lane, u_row, dt_row, z_row, o_row, B_tiles, C_tiles,
                s_ul, s_dl, s_zl, s_ol,
                HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                B_VAR: tl.constexpr, C_VAR: tl.constexpr, MASK_T: tl.constexpr,
                NJ: tl.constexpr, S: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr, TM: tl.constexpr,
                VEC: tl.constexpr):
    """``_thread_tile`` (without the LOCAL pass) on a state tuple of NJ (BLOCK_D, S) tensors; the first POLY
    entries take ``_exp2_fma``."""
    tt, t, m2, u, _, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS, MASK_T, T)
    dtu = dt * u
    zero_rows = tl.zeros_like(dmask.to(tl.int32))[:, None, None]
    tile_offs = (t0 // TM) * (NJ * S * TM)
    if T != TM:
        tile_offs += t0 % TM
    Bt = ()
    Ct = ()
    if B_VAR:
        Bt = _lanes_state_tiles(B_tiles + tile_offs, zero_rows, lane, NJ, S, T, TM, VEC)
    if C_VAR:
        Ct = _lanes_state_tiles(C_tiles + tile_offs, zero_rows, lane, NJ, S, T, TM, VEC)
    h, y = _lanes_steps(h, A2, Bfix, Cfix, tt, dt, dtu, Bt, Ct, B_VAR, C_VAR, NJ, POLY, T)
    if HAS_D:
        y += Dv[:, None] * u
    if HAS_Z:
        zz = tl.load(z_row[:, None] + t[None, :] * s_zl, mask=m2, other=0.0)
        y = silu_gate(y, zz)
    tl.store(o_row[:, None] + t[None, :] * s_ol, y, mask=m2)
    return h


@triton.jit
def _lanes_program(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, dim, group_size, dstate,
                   s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od, s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, s_Ad, s_An,
                   HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                   BLOCK_D: tl.constexpr, NJ: tl.constexpr, S: tl.constexpr):
    """What a lanes-forward program (batch pid 0, BLOCK_D channels pid 1, S lanes each) starts from: its channels,
    lanes and mask, the per-state parameters, bias and D, zero states, and its row pointers (u, delta, z, out and
    the var-B/C tiles (batch, G, L/T, NP, T), zero-padded)."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    lane = tl.arange(0, S)
    dmask = d < dim
    grp = (pid_d * BLOCK_D) // group_size
    A2, Bfix, Cfix = _lanes_state_params(A_ptr, B_ptr, C_ptr, d, dmask, lane, dstate, s_Ad, s_An, s_Bb, s_Bn,
                                         s_Cb, s_Cn, B_VAR, C_VAR, NJ, S)
    bias, Dv = channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS, HAS_D)
    h = ()
    for _ in tl.static_range(NJ):
        h = h + (tl.zeros([BLOCK_D, S], dtype=tl.float32),)
    rows = (u_ptr + pid_b * s_ub + d * s_ud, delta_ptr + pid_b * s_db + d * s_dd, z_ptr + pid_b * s_zb + d * s_zd,
            out_ptr + pid_b * s_ob + d * s_od, B_ptr + pid_b * s_Bb + grp * s_Bg, C_ptr + pid_b * s_Cb + grp * s_Cg)
    return d, lane, dmask, A2, Bfix, Cfix, bias, Dv, h, rows


@triton.jit
def _thread_lanes_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr,
    dim, L, n_chunks, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr,
    S: tl.constexpr, POLY: tl.constexpr, VEC: tl.constexpr,
):
    """The thread forward with each channel's states on S lanes and POLY software exponentials per lane and step
    (one program per (batch, BLOCK_D channels), the whole sequence; no segments); VEC: B/C tile steps per 16
    bytes. Same outputs as ``_thread_fwd_kernel``: y and the fp32 state at every chunk end, (batch, dim, n_chunks,
    NP)."""
    NJ: tl.constexpr = NP // S
    pid_b = tl.program_id(0)
    d, lane, dmask, A2, Bfix, Cfix, bias, Dv, h, rows = _lanes_program(
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, dim, group_size, dstate,
        s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od, s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, s_Ad, s_An,
        HAS_D, HAS_BIAS, B_VAR, C_VAR, BLOCK_D, NJ, S)
    u_row, dt_row, z_row, o_row, B_tiles, C_tiles = rows
    c = 0
    while c < n_chunks:
        n_full = (tl.minimum((c + 1) * CHUNK, L) - c * CHUNK) // T
        j = 0
        while j < n_full:
            h = _lanes_tile(h, A2, Bfix, Cfix, Dv, bias, c * CHUNK + j * T, L, dmask, lane, u_row, dt_row, z_row,
                            o_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, s_ol, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS,
                            B_VAR, C_VAR, False, NJ, S, POLY, T, T, VEC)
            j += 1
        t0 = c * CHUNK + n_full * T
        t_end = tl.minimum((c + 1) * CHUNK, L)
        while t0 < t_end:
            h = _lanes_tile(h, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, lane, u_row, dt_row, z_row, o_row, B_tiles,
                            C_tiles, s_ul, s_dl, s_zl, s_ol, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, True,
                            NJ, S, POLY, 1, T, VEC)
            t0 += 1
        st_row = ((pid_b * dim + d) * n_chunks + c) * NP
        for jj in tl.static_range(NJ):
            tl.store(states_ptr + st_row[:, None] + lane[None, :] * NJ + jj, h[jj], mask=dmask[:, None])
        c += 1



# Latency-hiding forms of the lanes forward. In the sm_90 SASS of ``_thread_lanes_fwd_kernel`` the compiler spreads
# a tile's 32 B/C vector loads (L2 hits) over the tile, each a few steps before its use, so with ~2 warps per SM
# scheduler at (8, 2048, 2048, 16) their latency shows. Here the full T-step tiles run in one flat loop (a state
# store every CHUNK/T tiles), so that loads can run ahead across chunk ends:
# * PREFETCH (``_thread_lanes_pf_fwd_kernel``, opt-in): all loads of tile i+1 (u, delta, z, B/C columns) are issued
#   in iteration i into loop-carried registers (2*NJ*T fp32 B/C values per lane more: 255 registers at NP=16, T=8;
#   ptxas still places them in the last ~40% of the iteration, and copies them to the current tile's registers:
#   ~17 MOV per channel-step).
# * STAGES > 1 (``_thread_lanes_seg_fwd_kernel``, the default's forward, on one sequence segment or several):
#   ``tl.range(num_stages=STAGES)``: Triton's software pipeliner turns the loads into asynchronous copies to shared
#   memory (cp.async) and the tile reads shared memory. The copies for tile i+STAGES-1 are issued at the end of
#   iteration i, and iteration i waits for its own at the top, so STAGES = 2 hides nothing; 3 keeps one tile's
#   copies in flight during a tile, 4 two. B/C are loaded as one block per lane (``_lanes_state_block``).


@triton.jit
def _split_last(x, W: tl.constexpr):
    """The W entries of the last axis of a (1, S, W) tensor as a tuple of (1, S) tensors (by halving)."""
    if W == 1:
        cols = (tl.reshape(x, (x.shape[0], x.shape[1])),)
    else:
        even, odd = tl.split(tl.reshape(x, (x.shape[0], x.shape[1], W // 2, 2)))
        ce = _split_last(even, W // 2)
        co = _split_last(odd, W // 2)
        cols = ()
        for i in tl.static_range(W // 2):
            cols = cols + (ce[i], co[i])
    return cols


@triton.jit
def _lanes_state_block(tile_ptr, lane, NJ: tl.constexpr, S: tl.constexpr, T: tl.constexpr):
    """``_lanes_state_tiles`` as one (1, S, NJ*T) load (lane s's NJ rows are contiguous in the tile), for the
    pipeliner: it copies the tile to shared memory spread over the warp (one 16-byte copy per thread, where the
    broadcast (BLOCK_D, S, VEC) pieces took 2*NJ*T/VEC copies per thread and, broadcast over the BLOCK_D channels,
    16 KB of shared memory a stage at NP = 16, T = 8), and the columns come back as in-thread slices."""
    w = tl.arange(0, NJ * T)
    cols = _split_last(tl.load(tile_ptr + (lane * (NJ * T))[None, :, None] + w[None, None, :]), NJ * T)
    tiles = ()
    for j in tl.static_range(NJ):
        row = ()
        for k in tl.static_range(T):
            row = row + (cols[j * T + k].to(tl.float32),)
        tiles = tiles + (row,)
    return tiles


@triton.jit
def _lanes_tile_loads(t0, ok, tile, dmask, lane, u_row, dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl,
                      HAS_Z: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr, NJ: tl.constexpr,
                      S: tl.constexpr, T: tl.constexpr, VEC: tl.constexpr, BC_BLOCK: tl.constexpr):
    """The loads of the full tile at steps t0 .. t0+T-1, as the tile loop carries them: u, delta, z (BLOCK_D, T)
    in their dtype (z: u without z), masked off unless ``ok`` (a scalar, so that they stay vector loads), and the
    B/C columns of B/C tile ``tile`` (empty tuples where fixed): (BLOCK_D, S) from 16-byte broadcast loads, or with
    BC_BLOCK (1, S) from one load of each lane's rows (``_lanes_state_block``, for the pipeliner)."""
    t = t0 + tl.arange(0, T)
    m2 = tl.broadcast_to(dmask[:, None] & ok, (dmask.shape[0], T))
    u = tl.load(u_row[:, None] + t[None, :] * s_ul, mask=m2, other=0.0)
    dt = tl.load(dt_row[:, None] + t[None, :] * s_dl, mask=m2, other=0.0)
    z = u
    if HAS_Z:
        z = tl.load(z_row[:, None] + t[None, :] * s_zl, mask=m2, other=0.0)
    Bt = ()
    Ct = ()
    if BC_BLOCK:
        if B_VAR:
            Bt = _lanes_state_block(B_tiles + tile * (NJ * S * T), lane, NJ, S, T)
        if C_VAR:
            Ct = _lanes_state_block(C_tiles + tile * (NJ * S * T), lane, NJ, S, T)
    else:
        zero_rows = tl.zeros_like(dmask.to(tl.int32))[:, None, None]
        if B_VAR:
            Bt = _lanes_state_tiles(B_tiles + tile * (NJ * S * T), zero_rows, lane, NJ, S, T, T, VEC)
        if C_VAR:
            Ct = _lanes_state_tiles(C_tiles + tile * (NJ * S * T), zero_rows, lane, NJ, S, T, T, VEC)
    return u, dt, z, Bt, Ct


@triton.jit
def _lanes_delta(dt_pre, bias, dmask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """A loaded (BLOCK_D, T) delta tile as the scan uses it: fp32, + bias, softplus, 0 on masked channels."""
    dt = dt_pre.to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias[:, None]
    if SOFTPLUS:
        dt = softplus_fp32(dt, dt_pre.dtype != tl.float32)
    return tl.where(dmask[:, None], dt, 0.0)


@triton.jit
def _lanes_tile_math(h, A2, Bfix, Cfix, Dv, bias, t0, dmask, loads, o_row, s_ol,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                     B_VAR: tl.constexpr, C_VAR: tl.constexpr, NJ: tl.constexpr, POLY: tl.constexpr,
                     T: tl.constexpr):
    """``_lanes_tile`` of a full tile from the ``_lanes_tile_loads`` of it; returns the state tuple."""
    u, dt_pre, z, Bt, Ct = loads
    tt = tl.arange(0, T)
    m2 = tl.broadcast_to(dmask[:, None], (dmask.shape[0], T))
    u = u.to(tl.float32)
    dt = _lanes_delta(dt_pre, bias, dmask, HAS_BIAS, SOFTPLUS)
    h, y = _lanes_steps(h, A2, Bfix, Cfix, tt, dt, dt * u, Bt, Ct, B_VAR, C_VAR, NJ, POLY, T)
    if HAS_D:
        y += Dv[:, None] * u
    if HAS_Z:
        y = silu_gate(y, z)
    tl.store(o_row[:, None] + (t0 + tt)[None, :] * s_ol, y, mask=m2)
    return h


@triton.jit
def _lanes_store_state(h, states_ptr, st_rows, c, dmask, lane, NJ: tl.constexpr, NP: tl.constexpr):
    """Write the state tuple as chunk c's end state (rows of (batch, dim, n_chunks, NP) at ``st_rows``)."""
    for jj in tl.static_range(NJ):
        tl.store(states_ptr + st_rows[:, None] + c * NP + lane[None, :] * NJ + jj, h[jj], mask=dmask[:, None])


@triton.jit
def _lanes_last_steps(h, A2, Bfix, Cfix, Dv, bias, L, n_tiles, n_chunks, dmask, lane, u_row, dt_row, z_row, o_row,
                      B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol,
                      HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                      B_VAR: tl.constexpr, C_VAR: tl.constexpr, NJ: tl.constexpr, S: tl.constexpr, NP: tl.constexpr,
                      POLY: tl.constexpr, T: tl.constexpr, CHUNK: tl.constexpr, VEC: tl.constexpr):
    """The steps after the last full tile of a flat-loop lanes forward, one at a time, and the last chunk's end
    state where that chunk ends inside a tile or after the last full one."""
    t0 = n_tiles * T
    while t0 < L:
        h = _lanes_tile(h, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, lane, u_row, dt_row, z_row, o_row, B_tiles,
                        C_tiles, s_ul, s_dl, s_zl, s_ol, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, True,
                        NJ, S, POLY, 1, T, VEC)
        t0 += 1
    if L % CHUNK != 0:
        _lanes_store_state(h, states_ptr, st_rows, n_chunks - 1, dmask, lane, NJ, NP)


@triton.jit
def _lanes_pf_iteration(i, h, ahead, A2, Bfix, Cfix, Dv, bias, n_tiles, last_tile, dmask, lane, u_row, dt_row, z_row,
                        o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol,
                        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                        B_VAR: tl.constexpr, C_VAR: tl.constexpr, NJ: tl.constexpr, S: tl.constexpr,
                        NP: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr,
                        VEC: tl.constexpr):
    """Full tile i of ``_thread_lanes_pf_fwd_kernel`` from its loads ``ahead``: (state tuple, loads of tile i+1)."""
    # B/C tile loads are not masked: the one past the last full tile repeats it (in bounds)
    loads = _lanes_tile_loads((i + 1) * T, i + 1 < n_tiles, tl.minimum(i + 1, last_tile), dmask, lane, u_row, dt_row,
                              z_row, B_tiles, C_tiles, s_ul, s_dl, s_zl, HAS_Z, B_VAR, C_VAR, NJ, S, T, VEC, False)
    h = _lanes_tile_math(h, A2, Bfix, Cfix, Dv, bias, i * T, dmask, ahead, o_row, s_ol, HAS_D, HAS_Z, HAS_BIAS,
                         SOFTPLUS, B_VAR, C_VAR, NJ, POLY, T)
    if (i + 1) % TPC == 0:
        _lanes_store_state(h, states_ptr, st_rows, (i + 1) // TPC - 1, dmask, lane, NJ, NP)
    return h, loads


@triton.jit
def _thread_lanes_pf_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr,
    dim, L, n_chunks, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr,
    S: tl.constexpr, POLY: tl.constexpr, VEC: tl.constexpr,
):
    """``_thread_lanes_fwd_kernel`` with its full tiles in one loop, each loaded a tile ahead into registers (the
    PREFETCH form above); same arguments and outputs."""
    NJ: tl.constexpr = NP // S
    TPC: tl.constexpr = CHUNK // T
    pid_b = tl.program_id(0)
    d, lane, dmask, A2, Bfix, Cfix, bias, Dv, h, rows = _lanes_program(
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, dim, group_size, dstate,
        s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od, s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, s_Ad, s_An,
        HAS_D, HAS_BIAS, B_VAR, C_VAR, BLOCK_D, NJ, S)
    u_row, dt_row, z_row, o_row, B_tiles, C_tiles = rows
    st_rows = (pid_b * dim + d) * n_chunks * NP
    n_tiles = L // T
    last_tile = tl.maximum(n_tiles - 1, 0)
    ahead = _lanes_tile_loads(0, n_tiles > 0, 0, dmask, lane, u_row, dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl,
                              s_zl, HAS_Z, B_VAR, C_VAR, NJ, S, T, VEC, False)
    i = 0
    while i < n_tiles:
        h, ahead = _lanes_pf_iteration(i, h, ahead, A2, Bfix, Cfix, Dv, bias, n_tiles, last_tile, dmask, lane, u_row,
                                       dt_row, z_row, o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl,
                                       s_ol, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, NJ, S, NP, POLY, T, TPC,
                                       VEC)
        i += 1
    _lanes_last_steps(h, A2, Bfix, Cfix, Dv, bias, L, n_tiles, n_chunks, dmask, lane, u_row, dt_row, z_row,
                      o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol, HAS_D, HAS_Z, HAS_BIAS,
                      SOFTPLUS, B_VAR, C_VAR, NJ, S, NP, POLY, T, CHUNK, VEC)


@triton.jit
def _lanes_local_tile(h, dtsum, A2, Bfix, Cfix, bias, loads, dmask,
                      HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                      NJ: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr):
    """The LOCAL pass of a full tile: (state tuple, per-channel sum of delta) advanced over it; no y."""
    u, dt_pre, _, Bt, Ct = loads
    dt = _lanes_delta(dt_pre, bias, dmask, HAS_BIAS, SOFTPLUS)
    h, _ = _lanes_steps(h, A2, Bfix, Cfix, tl.arange(0, T), dt, dt * u.to(tl.float32), Bt, Ct, B_VAR, C_VAR, NJ,
                        POLY, T)
    return h, dtsum + tl.sum(dt, axis=1)


@triton.jit
def _lanes_seg_iteration(i, h, dtsum, A2, Bfix, Cfix, Dv, bias, dmask, lane, u_row, dt_row, z_row, o_row, B_tiles,
                         C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol,
                         HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                         B_VAR: tl.constexpr, C_VAR: tl.constexpr, LOCAL: tl.constexpr, NJ: tl.constexpr,
                         S: tl.constexpr, NP: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr,
                         VEC: tl.constexpr, BC_BLOCK: tl.constexpr):
    """Full tile i of ``_thread_lanes_seg_fwd_kernel``: (state tuple, delta sum); the LOCAL pass writes nothing."""
    loads = _lanes_tile_loads(i * T, True, i, dmask, lane, u_row, dt_row, z_row, B_tiles, C_tiles, s_ul, s_dl,
                              s_zl, HAS_Z and not LOCAL, B_VAR, C_VAR, NJ, S, T, VEC, BC_BLOCK)
    if LOCAL:
        h, dtsum = _lanes_local_tile(h, dtsum, A2, Bfix, Cfix, bias, loads, dmask, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR,
                                     NJ, POLY, T)
    else:
        h = _lanes_tile_math(h, A2, Bfix, Cfix, Dv, bias, i * T, dmask, loads, o_row, s_ol, HAS_D, HAS_Z, HAS_BIAS,
                             SOFTPLUS, B_VAR, C_VAR, NJ, POLY, T)
        if (i + 1) % TPC == 0:
            _lanes_store_state(h, states_ptr, st_rows, (i + 1) // TPC - 1, dmask, lane, NJ, NP)
    return h, dtsum


@triton.jit
def _thread_lanes_seg_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, states_ptr, seg_h_ptr, seg_dt_ptr,
    dim, L, n_chunks, chunks_per_seg, n_seg, group_size, dstate,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl, s_Ad, s_An,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    B_VAR: tl.constexpr, C_VAR: tl.constexpr, LOCAL: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, T: tl.constexpr,
    S: tl.constexpr, POLY: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, INTERP: tl.constexpr,
):
    """The lanes forward with its full tiles in one loop pipelined by Triton over STAGES > 1 (a plain loop under
    the interpreter (INTERP), which cannot run ``tl.range`` to a runtime bound), on sequence segments of
    ``chunks_per_seg`` whole chunks (program axis 2; one segment: the whole sequence, full pass only), with
    ``_thread_fwd_kernel``'s two passes: LOCAL (segments 0 .. n_seg-2) runs the segment from
    a zero state and writes its end state to ``seg_h`` (batch, n_seg, dim, NP) and its delta sum to ``seg_dt``
    (batch, n_seg, dim); the full pass starts each segment from the earlier ones folded as
    h <- h_local[s] + exp(A sum(delta)[s]) h and writes y and its chunk-end states. Only the last segment holds
    the sequence's partial tile and chunk."""
    NJ: tl.constexpr = NP // S
    TPC: tl.constexpr = CHUNK // T
    pid_b = tl.program_id(0)
    seg = tl.program_id(2)
    d, lane, dmask, A2, Bfix, Cfix, bias, Dv, h, rows = _lanes_program(
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, dim, group_size, dstate,
        s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od, s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, s_Ad, s_An,
        HAS_D, HAS_BIAS, B_VAR, C_VAR, BLOCK_D, NJ, S)
    u_row, dt_row, z_row, o_row, B_tiles, C_tiles = rows
    seg_rows = (pid_b * n_seg * dim + d) * NP  # + s * dim * NP + state
    if not LOCAL:
        s = 0
        while s < seg:
            dts = tl.load(seg_dt_ptr + (pid_b * n_seg + s) * dim + d, mask=dmask, other=0.0)[:, None]
            hn = ()
            for jj in tl.static_range(NJ):
                hl = tl.load(seg_h_ptr + seg_rows[:, None] + s * dim * NP + lane[None, :] * NJ + jj,
                             mask=dmask[:, None], other=0.0)
                hn = hn + (hl + tl.exp2(dts * A2[jj]) * h[jj],)
            h = hn
            s += 1
    dtsum = tl.zeros([BLOCK_D], dtype=tl.float32)
    st_rows = (pid_b * dim + d) * n_chunks * NP
    n_tiles = L // T
    i0 = seg * chunks_per_seg * TPC
    i1 = tl.minimum(i0 + chunks_per_seg * TPC, n_tiles)
    if STAGES > 1 and not INTERP:
        for i in tl.range(i0, i1, num_stages=STAGES):
            h, dtsum = _lanes_seg_iteration(i, h, dtsum, A2, Bfix, Cfix, Dv, bias, dmask, lane, u_row, dt_row, z_row,
                                            o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol,
                                            HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, NJ, S, NP, POLY,
                                            T, TPC, VEC, True)
    else:
        i = i0
        while i < i1:
            h, dtsum = _lanes_seg_iteration(i, h, dtsum, A2, Bfix, Cfix, Dv, bias, dmask, lane, u_row, dt_row, z_row,
                                            o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol,
                                            HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, B_VAR, C_VAR, LOCAL, NJ, S, NP, POLY,
                                            T, TPC, VEC, STAGES > 1)
            i += 1
    if LOCAL:
        for jj in tl.static_range(NJ):
            tl.store(seg_h_ptr + seg_rows[:, None] + seg * dim * NP + lane[None, :] * NJ + jj, h[jj],
                     mask=dmask[:, None])
        tl.store(seg_dt_ptr + (pid_b * n_seg + seg) * dim + d, dtsum, mask=dmask)
    elif seg == n_seg - 1:
        _lanes_last_steps(h, A2, Bfix, Cfix, Dv, bias, L, n_tiles, n_chunks, dmask, lane, u_row, dt_row, z_row,
                          o_row, B_tiles, C_tiles, states_ptr, st_rows, s_ul, s_dl, s_zl, s_ol, HAS_D, HAS_Z, HAS_BIAS,
                          SOFTPLUS, B_VAR, C_VAR, NJ, S, NP, POLY, T, CHUNK, VEC)
