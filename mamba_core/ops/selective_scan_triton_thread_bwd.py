"""Backward of the thread-per-channel selective scan in Triton (``_thread_bwd_kernel``, with the variants of
``THREAD_BWD_VARIANTS`` in ``selective_scan_triton``).

One lane per channel (or S lanes, NP/S states each) holds the channel's N <= 16 fp32 states. Per chunk the states
are recomputed from the forward's saved chunk-start state, parking the state at every T-step tile start in a
private scratch; then the tiles, last to first, recompute their T states in registers and walk the adjoint back
(``_thread_bwd_tile``), writing du, ddelta, dz and accumulating dA, dD, ddelta_bias and fixed dB/dC per channel.
Variable dB/dC are sums over channels: by a shuffle butterfly (``_shuffle_channel_sums``), a tensor-core product
(``_store_channel_sums``) or atomics. Thin inputs split the sequence into segments, whose adjoint carries a light
first pass computes (``_thread_bwd_carry_kernel``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .selective_scan_triton_common import channel_bias_and_d
from .selective_scan_triton_lanes import _exp2_fma, _lanes_state_block, _lanes_state_params
from .selective_scan_triton_thread import (
    _columns,
    _join_columns,
    _per_step,
    _state_params,
    _state_tiles,
    _thread_tile,
    _tile_inputs,
)


@triton.jit
def _sum_steps(x):
    """Sum of a (BLOCK_D, T) or (BLOCK_D, S, T) tile over its steps (in-thread adds)."""
    return tl.sum(x, axis=len(x.shape) - 1)


@triton.jit
def _from_columns(cols, T: tl.constexpr):
    """``_join_columns`` (the inverse of ``_columns``), with (R, S) columns joined as flat (R*S,) vectors and the
    (R*S, T) tile then reshaped to (R, S, T)."""
    if len(cols[0].shape) == 2:
        x = tl.reshape(_join_columns(_flat(cols, T), T), (cols[0].shape[0], cols[0].shape[1], T))
    else:
        x = _join_columns(cols, T)
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
def _shuffle_channel_sums(parts, b_ptr, c_ptr, c_off, t0, L, K: tl.constexpr, FIRST: tl.constexpr, T: tl.constexpr,
                          BLOCK_D: tl.constexpr, INTERP: tl.constexpr, ATOMIC: tl.constexpr):
    """``_store_channel_sums`` of dB and dC (BOTH; no padding) in fp32 by a transposing shuffle butterfly, for one
    lane per channel with BLOCK_D = 32 channels on the 32 lanes of one warp and K*T a multiple of 32. The sums of dB
    are stored at ``b_ptr`` and those of dC at ``b_ptr + c_off``, or with ATOMIC added to dB's rows at ``b_ptr``
    and dC's at ``c_ptr`` by relaxed fp32 atomics. (The stored form keeps the offset, not a pointer select: the
    select changes the compiled default backward, 244 -> 255 registers, and was not timed.)

    The K*T values v[p*T + k] of each lane halve in 5 rounds, round o = 16, 8, .., 1 pairing v[i] with v[i + m/2]
    (m values left): a lane with bit o set keeps the upper one, sends the lower one to the lane across bit o and
    adds what that lane sends. One shuffle and one add per value removed (a ``tl.sum`` butterfly takes 5 of each per
    value), exact fp32 adds; lane l ends with the sums over the 32 lanes of v[f + R*l], f < R = K*T/32."""
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
        if ATOMIC:
            tl.atomic_add(tl.where(p % 2 == 0, b_ptr, c_ptr) + (p // 2) * L + t, vals[f], mask=t < L, sem="relaxed")
        else:
            tl.store(b_ptr + ((p % 2) * c_off + (p // 2) * L + t), vals[f], mask=t < L)


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
def _add_channel_sums(ptrs, cols, m2, tmask, T: tl.constexpr):
    """T per-step columns of one state's dB or dC summed over the program's channels (``tl.sum``'s shuffle
    butterfly), then added at ``ptrs`` (the T steps' addresses) by one relaxed atomic per step."""
    tl.atomic_add(ptrs, tl.sum(tl.where(m2, _from_columns(cols, T), 0.0), axis=0), mask=tmask, sem="relaxed")


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
                _add_channel_sums(dB_ptr + bc_row, dB_c, m2, tmask, T)
        else:
            dBn = dBn + (dBf_acc[n] + dBf_n,)
        if C_VAR:
            if BC_DOT:
                if not B_VAR:
                    parts = parts + (_part_tile(dC_c, m2, T, S),)
            else:
                _add_channel_sums(dC_ptr + bc_row, dC_c, m2, tmask, T)
        else:
            dCn = dCn + (dCf_acc[n] + dCf_n,)
        if BC_DOT:  # a product per DOT_PARTS tiles (fewer live registers than one at the end)
            if ((n + 1) * PER_N) % DOT_PARTS == 0:
                if BC_DOT >= 3:  # 3: this program's partials; 4: straight into dB/dC, (batch, G, NP, L)
                    tl.static_assert(B_VAR and C_VAR, "shuffle sums: variable B and C")
                    rows = (pid_b * n_groups + grp) * NP * L
                    if BC_DOT == 4:
                        b_sums, c_sums, c_off = dB_ptr + rows, dC_ptr + rows, 0
                    else:
                        b_sums, c_sums, c_off = part_ptr, part_ptr, c_part
                    _shuffle_channel_sums(parts, b_sums, c_sums, c_off, t0, L, DOT_PARTS, (n + 1) * PER_N - DOT_PARTS,
                                          T, dmask.shape[0], INTERP, BC_DOT == 4)
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
