"""How fast can the default forward's arithmetic alone run at (8, 2048, 2048, 16)? A bound for the #4 target.

    PYTHONPATH=. python benchmarks/scan_bound.py          # GPU
    TRITON_INTERPRET=1 PYTHONPATH=. python benchmarks/scan_bound.py   # CPU smoke run (toy sizes)

The default forward (``thread_split2_stages3_seg``) runs one warp per 16 channels, two lanes per channel with 8 of
its 16 states each. At (8, 2048, 2048, 16) that is 1024 warps: ~1.9 per SM scheduler on an H100 (132 SMs x 4). This
script runs the same per-step arithmetic (``_lanes_steps``: the 16 exponentials, the recurrence, y over the states
and lanes; optionally softplus and the SiLU gate, ``softplus_fp32`` / ``silu_gate``) with no memory traffic at all:
delta is made in registers, B and C are fixed. Each row is timed against the exponential floor of ``scan.py``
(batch*L*dim*N exponentials at the measured MUFU.EX2 rate), at the real grid and at twice as many warps (the time
then halved: what the same work would take with ~3.9 warps per scheduler). A row that cannot reach 1.5x of the floor
bounds every forward with that arithmetic on that grid.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from scan import DEV, SMOKE, bench_ms, call, graph_ms, make_inputs, measure_exp2_rate

from mamba_core.ops.selective_scan_triton import selective_scan_triton
from mamba_core.ops.selective_scan_triton_common import silu_gate, softplus_fp32
from mamba_core.ops.selective_scan_triton_lanes import _lanes_steps

SHAPE = (1, 64, 32, 16) if SMOKE else (8, 2048, 2048, 16)  # (batch, L, dim, N)
LANES = 2
TILE = 16


@triton.jit
def _arithmetic_only_fwd_kernel(x_ptr, out_ptr, n_tiles, GATES: tl.constexpr, POLY: tl.constexpr, BLOCK_D: tl.constexpr,
                                S: tl.constexpr, NJ: tl.constexpr, T: tl.constexpr):
    """The lanes forward's per-tile math on synthetic inputs: delta from one (BLOCK_D, T) tile of ``x`` (channels, T),
    re-read every tile (an L1 hit; loaded like the forward's u/delta tiles, so that Triton gives the tile the same
    layout: each lane holds its channel's T steps) and scaled a little more each tile (no hoisting); A[n] = -(n + 1),
    B = 1/(n+1), C = 1; GATES: delta as softplus of a pre-activation and y gated by SiLU of it (bf16 z, the fast
    half-precision forms). Writes the (BLOCK_D, T) sum of the y tiles."""
    d = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    lane = tl.arange(0, S)
    tt = tl.arange(0, T)
    A2 = ()
    Bfix = ()
    Cfix = ()
    h = ()
    for j in tl.static_range(NJ):
        n = (lane * NJ + j + 1).to(tl.float32)[None, :] + tl.zeros([BLOCK_D, S], dtype=tl.float32)
        A2 = A2 + (n * -1.4426950408889634,)
        Bfix = Bfix + (1.0 / n,)
        Cfix = Cfix + (tl.full([BLOCK_D, S], 1.0, tl.float32),)
        h = h + (tl.zeros([BLOCK_D, S], dtype=tl.float32),)
    acc = tl.zeros([BLOCK_D, T], dtype=tl.float32)
    growth = 1.0
    i = 0
    while i < n_tiles:
        x = tl.load(x_ptr + d[:, None] * T + tt[None, :]) * growth
        if GATES:
            pre = x * 100.0 - 4.0  # softplus(pre) in (0.02, 0.9)
            dt = softplus_fp32(pre, True)
        else:
            dt = x
        h, y = _lanes_steps(h, A2, Bfix, Cfix, dt, dt * 0.5, (), (), False, False, NJ, POLY, T)
        if GATES:
            y = silu_gate(y, pre.to(tl.bfloat16))
        acc += y
        growth *= 1.0001
        i += 1
    tl.store(out_ptr + d[:, None] * T + tt[None, :], acc)


def run_row(gates, poly, lanes, grid_factor):
    batch, seqlen, dim, dstate = SHAPE
    channels = batch * dim * grid_factor
    block_d = 32 // lanes
    out = torch.empty(channels, TILE, device=DEV)
    x = 0.01 + 0.02 * torch.rand(channels, TILE, device=DEV)  # delta in (0.01, 0.03)
    n_tiles = seqlen // TILE

    def launch():
        _arithmetic_only_fwd_kernel[(channels // block_d,)](x, out, n_tiles, GATES=gates, POLY=poly, BLOCK_D=block_d,
                                                            S=lanes, NJ=dstate // lanes, T=TILE, num_warps=1)
    return bench_ms(launch) / grid_factor, out


def default_forward_ms():
    """GPU time of the default forward (bf16, var B/C, D, z, bias, softplus) at SHAPE, from a CUDA graph."""
    batch, seqlen, dim, dstate = SHAPE
    inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16, requires_grad=False)
    return graph_ms(lambda: call(selective_scan_triton, inp))


def main():
    batch, seqlen, dim, dstate = SHAPE
    exp_rate = measure_exp2_rate()
    floor = batch * seqlen * dim * dstate / exp_rate * 1e3
    warps = batch * dim * LANES // 32
    sms = torch.cuda.get_device_properties(0).multi_processor_count if not SMOKE else 1
    print(f"arithmetic of the default forward with no memory traffic, {SHAPE} (batch, L, dim, N), {LANES} lanes per "
          f"channel, {TILE}-step tiles; exp floor {floor:.3f} ms ({exp_rate / 1e12:.2f} T exp2/s); "
          f"{warps} warps = {warps / (4 * sms):.2f} per SM scheduler at 1x grid")
    print("| math per channel-step | MUFU ops | lanes per channel | grid | warps per scheduler | ms (per this shape's "
          "work) | x floor |")
    print("|---|---|---|---|---|---|---|")
    rows = (("16 exp2 + recurrence + y", False, 0, 16), ("+ softplus, SiLU gate (the forward's math)", True, 0, 20),
            ("+ softplus, SiLU; 1 exp2 per lane on the FMA pipe", True, 1, 18))
    ms = default_forward_ms()
    print(f"| the default forward itself (loads, stores; CUDA graph) | 20 | {LANES} | 1x | {warps / (4 * sms):.2f} | "
          f"{ms:.3f} | {ms / floor:.2f} |", flush=True)
    for name, gates, poly, mufu in rows:
        for lanes, factor in ((LANES, 1), (LANES, 2), (2 * LANES, 1)):
            ms, out = run_row(gates, poly, lanes, factor)
            assert torch.isfinite(out).all(), name
            per_sched = batch * dim * lanes * factor / 32 / (4 * sms)
            print(f"| {name} | {mufu} | {lanes} | {factor}x | {per_sched:.2f} | {ms:.3f} | {ms / floor:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
