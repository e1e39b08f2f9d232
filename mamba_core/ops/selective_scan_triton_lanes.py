"""Thread-forward variants in Triton with S lanes per channel (``THREAD_VARIANTS`` of ``selective_scan_triton``;
the default forward, ``thread_split2_stages3_seg``, is one of them).

Two ways past the one-lane thread forward's limits at (8, 2048, 2048, 16):

* lane split (S in 1, 2, 4): the NP states of a channel live on S lanes, NP/S = NJ per lane, state n = s*NJ + j on
  lane s (this order keeps A, B, C and the states in one layout, that of the B/C tile loads, with no lane shuffles).
  S times more warps, so fewer sequence segments are needed to fill the GPU; y_t costs a log2(S)-shuffle sum over
  the S lanes.
* software exponentials (POLY of a lane's NJ states): 2^x on the FMA pipe (``_exp2_fma``) instead of MUFU.EX2,
  which has 16 lanes per SM against 128 for FFMA: FlashAttention-4's split of the exponentials between pipes.

and three ways to hide the loads' latency: the next tile's loads in registers (``_thread_lanes_pf_fwd_kernel``),
or the full-tile loop pipelined by Triton (``tl.range(num_stages)``, cp.async copies to shared memory), on one
sequence segment or several (``_thread_lanes_seg_fwd_kernel``, with the two passes of the one-lane forward in
``selective_scan_triton_thread``).
Outputs are those of ``_thread_fwd_kernel``: y and the state every CHUNK steps.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .selective_scan_triton_common import channel_bias_and_d, silu_gate, softplus_fp32
from .selective_scan_triton_thread import _columns, _join_columns, _tile_inputs


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
def _lane_major_tile(cols, like, T: tl.constexpr):
    """T per-step (BLOCK_D,) values, each the same on a channel's S lanes -> a (BLOCK_D, T) tile in which lane s
    holds steps s*T/S .. (s+1)*T/S - 1 (``like``: a (BLOCK_D, S) tensor of the lanes' layout). That is the layout of
    a vector store of the tile, so the D term, the SiLU gate and the store of y run once per step: a tile built with
    a select per step stays in the per-step values' layout (steps strided over the lanes: scalar shared-memory
    reads of u and z, 2-byte stores), and one joined from the columns holds every step on all S lanes (the gate's
    exponential and division evaluated S times). Tiles shorter than S steps (the masked last steps) take the latter.
    H100, bf16 (run 13, benchmarks/README.md): the default forward 0.268 -> 0.259 ms at (8, 2048, 2048, 16), 2-4% at
    every benchmark shape, bitwise the same y."""
    S: tl.constexpr = like.shape[1]
    M: tl.constexpr = T // S
    if M == 0:
        tile = _join_columns(cols, T)
    else:
        lane = tl.broadcast_to(tl.arange(0, S)[None, :], like.shape)
        picked = ()
        for j in tl.static_range(M):
            v = tl.broadcast_to(cols[j][:, None], like.shape)
            for s in tl.static_range(1, S):
                v = tl.where(lane == s, cols[s * M + j][:, None], v)
            picked = picked + (v,)
        tile = tl.reshape(_join_columns(picked, M), (like.shape[0], T))
    return tile


@triton.jit
def _lanes_steps(h, A2, Bfix, Cfix, dt, dtu, Bt, Ct, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                 NJ: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr):
    """The T unrolled steps of a tile: (state tuple after them, y before D and z as a (BLOCK_D, T) tile)."""
    dt_cols = _columns(dt, T)
    dtu_cols = _columns(dtu, T)
    y_cols = ()
    for k in tl.static_range(T):
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
        y_cols = y_cols + (tl.sum(y_even + y_odd, axis=1),)
    return h, _lane_major_tile(y_cols, A2[0], T)


@triton.jit
def _lanes_tile(h, A2, Bfix, Cfix, Dv, bias, t0, L, dmask, lane, u_row, dt_row, z_row, o_row, B_tiles, C_tiles,
                s_ul, s_dl, s_zl, s_ol,
                HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                B_VAR: tl.constexpr, C_VAR: tl.constexpr, MASK_T: tl.constexpr,
                NJ: tl.constexpr, S: tl.constexpr, POLY: tl.constexpr, T: tl.constexpr, TM: tl.constexpr,
                VEC: tl.constexpr):
    """``_thread_tile`` (without the LOCAL pass) on a state tuple of NJ (BLOCK_D, S) tensors; the first POLY
    entries take ``_exp2_fma``."""
    _, t, m2, u, _, dt = _tile_inputs(t0, L, dmask, u_row, dt_row, s_ul, s_dl, bias, HAS_BIAS, SOFTPLUS, MASK_T, T)
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
    h, y = _lanes_steps(h, A2, Bfix, Cfix, dt, dtu, Bt, Ct, B_VAR, C_VAR, NJ, POLY, T)
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
    h, y = _lanes_steps(h, A2, Bfix, Cfix, dt, dt * u, Bt, Ct, B_VAR, C_VAR, NJ, POLY, T)
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
    h, _ = _lanes_steps(h, A2, Bfix, Cfix, dt, dt * u.to(tl.float32), Bt, Ct, B_VAR, C_VAR, NJ, POLY, T)
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
