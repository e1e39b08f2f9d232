"""GPU correctness check and benchmark of the Triton selective scan and decode step.

    PYTHONPATH=. python benchmarks/scan.py --check --segments --bench --decode
    TRITON_INTERPRET=1 PYTHONPATH=. python benchmarks/scan.py --check --bench --decode   # CPU smoke run

--check   forward and every gradient vs the fp32 loop reference on a grid of shapes/options, with mamba_ssm's
          tolerances (tests/ops/test_selective_scan.py): fp32 rtol 6e-4 atol 2e-3, fp16 3e-3/5e-3, bf16 3e-2/5e-2,
          weights 1e-3 (raised to the input tolerance with z), per-gradient multipliers as upstream.
--segments  the thread forward at the thin shapes for several sequence-segment counts (default marked), then the
            segmented pipelined lanes forward ("auto"'s, thread_split2_stages3_seg) at the same counts.
--bench   the table: bf16, z, softplus, delta_bias, D, input-dependent B/C (batch, N, L).
--decode  selective_state_update per step for batch 1..64, and time per token along a 4096-token decode.
--variants  every opt-in thread-forward variant (sst.THREAD_VARIANTS: lanes per channel, software exponentials,
          fp32 B/C tiles) against the default at (8, 2048, 2048, 16) bf16: forward-only and fwd+bwd ms, x floor.
--sass    no GPU needed: compiles the thread forwards for sm_90 offline and counts, per T-step tile of the hot
          loop, MUFU.EX2 / FFMA / FMUL / FADD / shuffles / all instructions per channel and step, with registers
          and spills (cuobjdump from Triton's NVIDIA backend).
--sass-bwd  no GPU needed: the same for the backward kernels (the scan backward of "auto", the thread backward and
          its opt-in variants sst.THREAD_BWD_VARIANTS): registers, spills, and per channel and step MUFU / FFMA /
          FMUL / FADD / SHFL / BAR / RED+ATOM / LDG / STG / LDS / STS / HMMA on the hot path.
--bwd-variants  every opt-in backward variant (_impl "bwd_<name>": the default forward with that backward) against
          "auto": fwd+bwd and backward-only ms at (8, 2048, 2048, 16) and (1, 65536, 2048, 16) bf16, and the max
          relative error of every gradient against "auto"'s.
--bwd-sweep  fwd+bwd ms of the thread_dot backward over forward chunks and backward segment counts (BWD_SWEEP).
--ab      forward ms of "auto" and the --only variants (name@T: with T-step tiles), round-robin over several rounds
          (min / median), at (8, 2048, 2048, 16) and (1, 65536, 2048, 16) bf16: for comparing kernels on one GPU
          whose speed drifts; name@T/C: with T-step tiles and a state saved every C steps. With --fb:
          forward+backward ms (e.g. --only bwd_<backward variant>) at four shapes.
--overhead  host time per call (Python and launches) of forward and fwd+bwd at a toy shape and at (8, 2048, 2048,
          16), and the forward's top functions under cProfile.
--rows I,J  --bench times only these rows of its table (0-based), e.g. --rows 3,4 for the two longest to run.
--shard I/N  --check and --bwd-sweep run only rows I, I+N, ... (kernel-check in device_suite.sh runs 6 side by side).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import time
import traceback

import torch
import triton
import triton.language as tl

import mamba_core.ops.selective_scan_triton as sst
from mamba_core.ops import selective_scan_chunked, selective_scan_ref, selective_state_update_ref
from mamba_core.ops.checks import triton_interpreting
from mamba_core.ops.selective_scan_triton import selective_scan_triton
from mamba_core.ops.selective_state_update_triton import selective_state_update_triton

HBM_BYTES_PER_S = 3.0e12
# --smoke: every section at toy sizes on CPU under the Triton interpreter, to catch script bugs before GPU time.
SMOKE = triton_interpreting()
DEV = "cpu" if SMOKE else "cuda"
ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, seqlen, dstate, dtype, bc="var", groups=1, has_d=True, has_z=True, has_bias=True,
                requires_grad=True, seed=0):
    torch.manual_seed(seed)
    dev = DEV

    def leaf(t):
        return t.requires_grad_(requires_grad)

    def bc_tensor():
        if bc == "fixed":
            return leaf(torch.randn(dim, dstate, device=dev))
        if bc == "var":
            return leaf(torch.randn(batch, dstate, seqlen, device=dev, dtype=dtype))
        return leaf(torch.randn(batch, groups, dstate, seqlen, device=dev, dtype=dtype))

    return {
        "u": leaf(torch.randn(batch, dim, seqlen, device=dev, dtype=dtype)),
        "delta": leaf((0.5 * torch.rand(batch, dim, seqlen, device=dev)).to(dtype)),
        "A": leaf(-0.5 * torch.rand(dim, dstate, device=dev)),
        "B": bc_tensor(),
        "C": bc_tensor(),
        "D": leaf(torch.randn(dim, device=dev)) if has_d else None,
        "z": leaf(torch.randn(batch, dim, seqlen, device=dev, dtype=dtype)) if has_z else None,
        "delta_bias": leaf(0.5 * torch.rand(dim, device=dev)) if has_bias else None,
    }


def call(fn, inp, softplus=True, **kw):
    return fn(*[inp[k] for k in ARGS], delta_softplus=softplus, **kw)


# ----------------------------------------------------------------------------------------------------- check
def check(args, cases=None):
    """Forward, last state and gradients vs selective_scan_ref, mamba_ssm's comparison rules."""
    quick = cases is not None
    cases = cases or []
    for dtype in () if quick else (torch.float32, torch.bfloat16, torch.float16):
        for seqlen in (1, 128, 373, 2048, 4100) if dtype != torch.float16 else (373, 2048):
            cases.append((dtype, 2, 96, seqlen, 16, "var", 1, True, True, True, True, None))
    for dtype in () if quick else (torch.float32, torch.bfloat16):
        cases += [
            (dtype, 2, 64, 700, 16, "fixed", 1, True, False, False, False, None),
            (dtype, 2, 64, 700, 16, "group", 4, True, True, True, True, None),
            (dtype, 2, 40, 300, 64, "var", 1, False, True, False, True, None),
            (dtype, 1, 24, 300, 256, "var", 1, True, False, True, True, None),
            (dtype, 2, 48, 257, 5, "group", 2, False, False, True, False, None),
        ]
    # tile shapes other than the defaults: (BLOCK_D, CHUNK[, thread-forward tile steps, segments])
    for config in () if quick else ((32, 16), (64, 16), (16, 32), (128, 16), (32, 32, 4, 1), (32, 32, 8, 5)):
        cases.append((torch.float32, 2, 200, 373, 16, "var", 1, True, True, True, True, config))
    if not quick:  # a long thin input split into many segments, in bf16
        cases.append((torch.bfloat16, 1, 64, 20000, 16, "var", 1, True, True, True, True, (32, 32, 8, 40)))
    if SMOKE:
        cases = [(torch.float32, 1, 4, 40, 4, "var", 1, True, True, True, True, (4, 16)),
                 (torch.bfloat16, 1, 4, 20, 4, "group", 2, True, False, True, False, None)]
    if not quick:
        index, count = args.shard
        cases = cases[index::count]
    failures = 0
    print("| dtype | b | dim | L | N | B/C | G | D z bias softplus | BLOCK_D,CHUNK | out err | worst grad (err/tol) "
          "| grad rel. err vs fp64: kernel / fp32 ref | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dtype, batch, dim, seqlen, dstate, bc, groups, has_d, has_z, has_bias, softplus, config in cases:
        kw = {} if config is None else dict(zip(("_block_d", "_chunk", "_tile", "_n_seg"), config, strict=False))
        inp = make_inputs(batch, dim, seqlen, dstate, dtype, bc, groups, has_d, has_z, has_bias)
        leaves = [k for k in ARGS if inp[k] is not None]
        out, last = call(selective_scan_triton, inp, softplus, return_last_state=True, **kw)
        dout = torch.randn_like(out)
        grads = torch.autograd.grad(out, [inp[k] for k in leaves], dout)
        out_r, last_r = call(selective_scan_ref, inp, softplus, return_last_state=True)
        grads_r = torch.autograd.grad(out_r, [inp[k] for k in leaves], dout)
        rtol, atol = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}[dtype]
        rtolw, atolw = (max(1e-3, rtol), max(1e-3, atol)) if has_z else (1e-3, 1e-3)
        var = bc != "fixed"
        mult = {"u": (rtol * 2, atol * 2), "delta": (rtol * 5, atol * 10), "A": (rtolw, atolw * 5),
                "B": ((rtol, atol) if var else (rtolw, atolw)), "C": ((rtol, atol) if var else (rtolw, atolw)),
                "D": (rtolw * 2, atolw * 2), "z": (rtolw, atolw), "delta_bias": (rtolw * 2, atolw * 2)}
        ok = torch.allclose(out, out_r, rtol=rtol, atol=atol) and torch.allclose(last, last_r, rtol=rtol, atol=atol)
        worst, worst_name = 0.0, ""
        for name, g, gr in zip(leaves, grads, grads_r, strict=True):
            r, a = mult[name]
            gr = gr.to(g.dtype)
            ratio = ((g.float() - gr.float()).abs() / (a + r * gr.float().abs())).max().item()
            if ratio > worst:
                worst, worst_name = ratio, name
            ok &= g.dtype == inp[name].dtype and ratio <= 1.0
        # Which side is off? Ground truth in fp64: worst gradient error of the kernel and of the fp32 reference
        # (short rows only: the fp64 loop and its autograd dominate the check's time on long ones).
        vs64 = [float("nan")] * 2
        if seqlen <= 1024:
            inp64 = {k: (None if v is None else v.detach().double().requires_grad_()) for k, v in inp.items()}
            out64 = call(selective_scan_ref, inp64, softplus)
            grads64 = torch.autograd.grad(out64, [inp64[k] for k in leaves], dout.double())
            vs64 = [max(((g.double() - g64).abs() / max(g64.abs().max().item(), 1e-6)).max().item()
                        for g, g64 in zip(gs, grads64, strict=True)) for gs in (grads, grads_r)]
        failures += not ok
        flags = " ".join("y" if f else "n" for f in (has_d, has_z, has_bias, softplus))
        out_err = (out.float() - out_r.float()).abs().max().item()
        print(f"| {str(dtype)[6:]} | {batch} | {dim} | {seqlen} | {dstate} | {bc} | {groups} | {flags} | "
              f"{config or 'default'} | {out_err:.1e} | {worst_name} {worst:.2f} | {vs64[0]:.1e} / {vs64[1]:.1e} | "
              f"{'PASS' if ok else 'FAIL'} |")
    for groups in (0,) if quick else (0, 4):
        for sdtype in (torch.float32, torch.bfloat16):
            batch, dim, dstate = (2, 8, 4) if SMOKE else (4, 256, 16)
            st = torch.randn(batch, dim, dstate, device=DEV, dtype=sdtype)
            st_r = st.clone()
            shp = (batch, dstate) if groups == 0 else (batch, groups, dstate)
            step = dict(x=torch.randn(batch, dim, device=DEV), dt=torch.rand(batch, dim, device=DEV),
                        A=-torch.rand(dim, dstate, device=DEV), B=torch.randn(*shp, device=DEV),
                        C=torch.randn(*shp, device=DEV), D=torch.randn(dim, device=DEV),
                        z=torch.randn(batch, dim, device=DEV), dt_bias=torch.rand(dim, device=DEV))
            y = selective_state_update_triton(st, **step, dt_softplus=True)
            y_r = selective_state_update_ref(st_r, **step, dt_softplus=True)
            tol = 1e-4 if sdtype == torch.float32 else 2e-2
            ok = torch.allclose(y, y_r, rtol=tol, atol=tol) and torch.allclose(st.float(), st_r.float(), rtol=tol,
                                                                                atol=tol)
            failures += not ok
            print(f"state_update groups={groups} state={str(sdtype)[6:]}: {'PASS' if ok else 'FAIL'}")
    print(f"CHECK {'PASSED' if failures == 0 else f'FAILED ({failures})'}")
    return failures


# ----------------------------------------------------------------------------------------------------- timing
@triton.jit
def _exp2_throughput_kernel(x_ptr, out_ptr, ITERS: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + offs)
    for _ in range(ITERS):
        v = tl.exp2(-v)  # stays in (0.5, 1): no denormals, no overflow
    tl.store(out_ptr + offs, v)


def measure_exp2_rate():
    block, iters, programs = (16, 4, 2) if SMOKE else (1024, 512, 132 * 64)
    x = torch.rand(programs * block, device=DEV)
    out = torch.empty_like(x)
    ms = bench_ms(lambda: _exp2_throughput_kernel[(programs,)](x, out, ITERS=iters, BLOCK=block))
    return programs * block * iters / (ms * 1e-3)


def bench_ms(fn, rep=100):
    if SMOKE:
        return once_ms(fn)
    return triton.testing.do_bench(fn, warmup=10, rep=rep)


def settled_ms(fn, rep=100):
    """The lower of two ``bench_ms``. At (8, 2048, 2048, 16) the forward's GPU time (~0.29 ms) is below its host time
    per call (0.3-0.45 ms: Python, checks, the B/C re-layout copies and the Triton launch; ``--overhead``, H100 run
    12), so back-to-back timings are host-bound whenever the CPU runs slow: one-shot timings read 0.29-0.50 ms."""
    return min(bench_ms(fn, rep), bench_ms(fn, rep))


def graph_ms(fn, rep=100):
    """GPU time of ``fn`` (a no-grad call of CUDA kernels) replayed from a CUDA graph: what the kernels take when the
    host's per-call time (Python, checks, launches; comparable to the forward's GPU time at (8, 2048, 2048, 16)) is
    not in the way, as in a captured model. Plain ``bench_ms`` in --smoke runs."""
    if SMOKE:
        return bench_ms(fn, rep)
    with torch.no_grad():
        fn()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    return bench_ms(graph.replay, rep)


def sync():
    if not SMOKE:
        torch.cuda.synchronize()


def once_ms(fn):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1e3


def fwd_bwd_fn(inp, fn=selective_scan_triton):
    leaves = [inp[k] for k in ARGS if inp[k] is not None]
    out = call(fn, inp)
    dout = torch.randn_like(out)
    del out
    return lambda: torch.autograd.grad(call(fn, inp), leaves, dout)


SEG_VARIANT = sst.KERNEL_PAIRS["auto"][0]


def segments(args):
    """Thread forward at the thin shapes for several segment counts (the default picks one from the SM count), then
    the segmented pipelined lanes forward (SEG_VARIANT) at the same counts."""
    print("thread forward, bf16, var B/C, D, z, bias, softplus: ms per segment count (default marked *)")
    shapes = [((1, 40, 8, 16), (1, 2, 4))] if SMOKE else [
        ((1, 65536, 2048, 16), (1, 4, 8, 16, 32)), ((1, 1048576, 256, 16), (8, 32, 64, 128, 256, 512)),
        ((8, 2048, 2048, 16), (1, 2))]
    for (batch, seqlen, dim, dstate), counts in shapes:
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16, requires_grad=False)
        xs = [inp[k] for k in ARGS]
        default = sst._pick_thread_config(batch, dim, seqlen, dim, torch.device(DEV))[4]
        cells = []
        for n_seg in sorted(set(counts) | {default}):
            ms = bench_ms(lambda n_seg=n_seg, xs=xs: sst._forward(*xs, True, "thread", n_seg=n_seg), rep=20)
            cells.append(f"{n_seg}{'*' if n_seg == default else ''}: {ms:.3f}")
        print(f"({batch}, {seqlen}, {dim}, {dstate}): " + ", ".join(cells), flush=True)
        cells = []  # the segmented pipelined lanes forward, same counts (1: its unsegmented kernel)
        for n_seg in sorted(set(counts) | {default}):
            ms = bench_ms(lambda n_seg=n_seg, xs=xs: sst._forward(*xs, True, SEG_VARIANT, n_seg=n_seg), rep=20)
            cells.append(f"{n_seg}{'*' if n_seg == default else ''}: {ms:.3f}")
        print(f"  {SEG_VARIANT} (auto: the * count below 2 warps per SM, else 1): " + ", ".join(cells), flush=True)
        del inp, xs


def bench(args):
    exp_rate = measure_exp2_rate()
    print(f"measured exp2 throughput: {exp_rate / 1e12:.2f} Texp/s; HBM floor at {HBM_BYTES_PER_S / 1e12:.1f} TB/s")
    print("bf16 u/delta/z/B/C, B/C (batch, N, L), D, z, delta_bias, softplus. Times in ms; fwd: eager calls back to "
          "back (host time included where it is the longer), fwd graph: replayed from a CUDA graph (the GPU's time; "
          "fwd/floor and BW use it); mem = peak extra GiB beyond inputs (fwd / fwd+bwd incl. grads); BW = min bytes / "
          "fwd time; x-loop/x-chunked = eager forward speed-up over selective_scan_ref / selective_scan_chunked")
    print("| (batch, L, dim, N) | fwd ms | fwd graph ms | floor ms | fwd/floor | BW TB/s | fwd+bwd ms | mem fwd | "
          "mem f+b | x-loop | x-chunked |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    shapes = [(8, 2048, 2048, 16), (8, 2048, 8192, 16), (1, 65536, 2048, 16), (1, 1048576, 256, 16),
              (64, 1024, 1536, 16)]
    if args.rows:
        shapes = [shapes[int(i)] for i in args.rows.split(",")]
    for batch, seqlen, dim, dstate in [(1, 40, 4, 16)] if SMOKE else shapes:
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
        with torch.no_grad():
            mem_fwd = peak_extra_gib(lambda inp=inp: call(selective_scan_triton, inp))
            fwd = settled_ms(lambda inp=inp: call(selective_scan_triton, inp))
        fwd_graph = graph_ms(lambda inp=inp: call(selective_scan_triton, inp))
        fb_fn = fwd_bwd_fn(inp)
        mem_fb = peak_extra_gib(fb_fn)
        fb = bench_ms(fb_fn, rep=50)
        min_bytes = 2 * (4 * batch * dim * seqlen + 2 * batch * dstate * seqlen)  # u, delta, z, y; B, C
        floor = max(min_bytes / HBM_BYTES_PER_S, batch * seqlen * dim * dstate / exp_rate) * 1e3
        loop = chunked = "-"
        with torch.no_grad():
            if seqlen <= 4096:
                loop = f"{once_ms(lambda inp=inp: call(selective_scan_ref, inp)) / fwd:.0f}x"
            if seqlen <= 65536:
                call(selective_scan_chunked, inp)
                chunked = f"{once_ms(lambda inp=inp: call(selective_scan_chunked, inp)) / fwd:.0f}x"
        print(f"| ({batch}, {seqlen}, {dim}, {dstate}) | {fwd:.3f} | {fwd_graph:.3f} | {floor:.3f} | "
              f"{fwd_graph / floor:.2f} | {min_bytes / fwd_graph / 1e9:.2f} | {fb:.3f} | {mem_fwd:.2f} | "
              f"{mem_fb:.2f} | {loop} | {chunked} |")
        del inp, fb_fn


def peak_extra_gib(fn):
    """GiB that one call of ``fn`` allocates at its peak beyond what was allocated before it (0 in --smoke runs)."""
    if SMOKE:
        fn()
        return 0.0
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def decode(args):
    dim, dstate = (8, 4) if SMOKE else (4096, 16)
    print(f"selective_state_update, dim={dim}, N={dstate}, fp32 state, bf16 x/dt/z, B/C (batch, N): us per call")
    print("| batch | triton us (eager, incl. launch) | triton us (CUDA graph) | torch ref us | state GB/s (graph) |")
    print("|---|---|---|---|---|")
    for batch in (1, 2) if SMOKE else (1, 2, 4, 8, 16, 32, 64):
        st = torch.randn(batch, dim, dstate, device=DEV)
        step = dict(x=torch.randn(batch, dim, device=DEV, dtype=torch.bfloat16),
                    dt=torch.rand(batch, dim, device=DEV, dtype=torch.bfloat16),
                    A=-torch.rand(dim, dstate, device=DEV), B=torch.randn(batch, dstate, device=DEV),
                    C=torch.randn(batch, dstate, device=DEV), D=torch.randn(dim, device=DEV),
                    z=torch.randn(batch, dim, device=DEV, dtype=torch.bfloat16),
                    dt_bias=torch.rand(dim, device=DEV))
        t = bench_ms(lambda st=st, step=step: selective_state_update_triton(st, **step, dt_softplus=True)) * 1e3
        graph = "-" if SMOKE else "{:.2f}".format(1e3 * triton.testing.do_bench_cudagraph(
            lambda st=st, step=step: selective_state_update_triton(st, **step, dt_softplus=True)))
        r = bench_ms(lambda st=st, step=step: selective_state_update_ref(st, **step, dt_softplus=True)) * 1e3
        bw = "-" if SMOKE else f"{2 * st.numel() * 4 / (float(graph) * 1e-6) / 1e9:.0f}"
        print(f"| {batch} | {t:.2f} | {graph} | {r:.1f} | {bw} |")
    batch, n_tokens, window = (1, 4, 2) if SMOKE else (8, 4096, 256)
    st = torch.zeros(batch, dim, dstate, device=DEV)
    xs = torch.randn(n_tokens, batch, dim, device=DEV, dtype=torch.bfloat16)
    A = -torch.rand(dim, dstate, device=DEV)
    Bs = torch.randn(n_tokens, batch, dstate, device=DEV)
    for i in range(window):  # warm-up
        selective_state_update_triton(st, xs[i], xs[i], A, Bs[i], Bs[i], dt_softplus=True)
    per_token = []
    for start in range(0, n_tokens, window):
        def run_window(start=start):
            for i in range(start, start + window):
                selective_state_update_triton(st, xs[i], xs[i], A, Bs[i], Bs[i], dt_softplus=True)
        per_token.append(once_ms(run_window) * 1e3 / window)
    print(f"decode batch {batch}: us/token per {window}-token window along positions 0..{n_tokens}: "
          + " ".join(f"{v:.1f}" for v in per_token))


AB_SHAPES = ((8, 2048, 2048, 16), (1, 65536, 2048, 16))


def ab(args):
    """Forward-only ms of "auto" and the --only forward variants, timed round-robin over AB_ROUNDS rounds (one GPU's
    timings drift by tens of percent between runs a minute apart, which a one-shot table cannot tell from a
    change), at AB_SHAPES bf16; prints min and median per implementation, and the GPU clocks."""
    impls = ["auto"] + [name for name in args.only.split(",") if name]
    shapes = [(1, 40, 8, 16)] if SMOKE else (AB_FB_SHAPES if args.fb else AB_SHAPES)
    for batch, seqlen, dim, dstate in shapes:
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16, requires_grad=args.fb)
        times = {impl: [] for impl in impls}
        runs = {}
        for impl in impls:
            spec, _, chunk = impl.partition("/")  # name/C: with a state saved every C steps
            name, _, tile = spec.partition("@")  # name@T: that variant with T-step tiles
            kw = dict(_impl=name, _tile=int(tile) if tile else None, _chunk=int(chunk) if chunk else None)
            if args.fb:
                runs[impl] = fwd_bwd_fn(inp, lambda *a, kw=kw, **k: selective_scan_triton(*a, **kw, **k))
            else:
                runs[impl] = lambda kw=kw, inp=inp: call(selective_scan_triton, inp, **kw)
        with torch.set_grad_enabled(args.fb):
            for _ in range(1 if SMOKE else AB_ROUNDS):
                for impl in impls:
                    times[impl].append(bench_ms(runs[impl], rep=30))
        print(f"({batch}, {seqlen}, {dim}, {dstate}) {'fwd+bwd' if args.fb else 'fwd'} ms, min / median of "
              f"{len(times['auto'])} rounds: "
              + ", ".join(f"{impl} {min(t):.3f} / {sorted(t)[len(t) // 2]:.3f}" for impl, t in times.items()),
              flush=True)
        del inp
    if not SMOKE:
        print(subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,power.draw,temperature.gpu",
                              "--format=csv"], capture_output=True, text=True).stdout.strip())


AB_ROUNDS = 7
AB_FB_SHAPES = ((8, 2048, 2048, 16), (8, 2048, 8192, 16), (1, 65536, 2048, 16), (64, 1024, 1536, 16))


def quick(args):
    """A one-minute GPU pass: one correctness case, forward configs and fwd+bwd at (8, 2048, 2048, 16)."""
    failures = check(args, [(torch.bfloat16, 2, 96, 373, 16, "var", 1, True, True, True, True, None),
                            (torch.float32, 2, 64, 300, 16, "group", 2, True, True, True, True, (32, 16))])
    batch, seqlen, dim, dstate = (1, 40, 8, 16) if SMOKE else (8, 2048, 2048, 16)
    inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
    xs = [x.detach() if x is not None else None for x in (inp[k] for k in ARGS)]
    for impl, bd, ch, nw in [("thread", None, None, None), ("seq", None, None, None), ("seq", 16, 32, 1)]:
        ms = bench_ms(lambda impl=impl, bd=bd, ch=ch, nw=nw: sst._forward(*xs, True, impl, bd, ch, nw), rep=30)
        print(f"fwd {impl} {bd} {ch} {nw}: {ms:.3f} ms", flush=True)
    fb = bench_ms(fwd_bwd_fn(inp), rep=30)
    print(f"fwd+bwd default: {fb:.3f} ms", flush=True)
    with torch.no_grad():
        fwd = bench_ms(lambda: call(selective_scan_triton, inp), rep=30)
        loop = once_ms(lambda: call(selective_scan_ref, inp))
    print(f"fwd default via selective_scan_triton: {fwd:.3f} ms; loop reference {loop:.1f} ms ({loop / fwd:.0f}x)")
    return failures


def variants(args):
    """Forward-only and fwd+bwd time of the default and of every THREAD_VARIANTS forward (each with the scan
    backward) at (8, 2048, 2048, 16) bf16, var B/C, D, z, bias, softplus; against the exponential floor."""
    batch, seqlen, dim, dstate = (1, 40, 8, 16) if SMOKE else (8, 2048, 2048, 16)
    exp_rate = measure_exp2_rate()
    floor = batch * seqlen * dim * dstate / exp_rate * 1e3
    inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
    print(f"thread-forward variants at ({batch}, {seqlen}, {dim}, {dstate}) bf16; exp floor {floor:.3f} ms "
          f"({exp_rate / 1e12:.2f} T exp2/s); fwd = no-grad forward, fwd+bwd with the scan backward")
    print("| impl | lanes S | poly/lane | fp32 B/C | prefetch/stages | fwd ms | fwd x floor | fwd+bwd ms "
          "| out: max abs diff vs default | last state: max rel. err vs default |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with torch.no_grad():
        ref, ref_last = call(selective_scan_triton, inp, _impl="thread_scan", return_last_state=True)
        ref, scale = ref.float(), ref_last.abs().max().item()
    # (name, _impl, extra kwargs): the default (segments picked from the SM count), the same kernel unsplit, then
    # every variant (forced to run with _n_seg=1: by default a variant falls back on inputs too thin for the GPU)
    rows = [("thread_scan (old default)", "thread_scan", {}), ("thread_scan _n_seg=1", "thread_scan", {"_n_seg": 1})]
    rows += [(impl, impl, {"_n_seg": 1}) for impl in sst.THREAD_VARIANTS
             if not args.only or impl in args.only.split(",")]
    for name, impl, kw in rows:
        lanes, poly, f32, prefetch, stages, _ = sst.THREAD_VARIANTS.get(impl, sst.ThreadFwdVariant(1, 0, False))
        try:
            with torch.no_grad():
                out, last = call(selective_scan_triton, inp, _impl=impl, return_last_state=True, **kw)
                err = (out.float() - ref).abs().max().item()
                err_last = (last - ref_last).abs().max().item() / scale
                fwd = bench_ms(lambda impl=impl, kw=kw: call(selective_scan_triton, inp, _impl=impl, **kw), rep=50)
            fb = bench_ms(fwd_bwd_fn(inp, lambda *a, impl=impl, kw=kw, **k: selective_scan_triton(*a, _impl=impl,
                                                                                                   **kw, **k)), rep=30)
        except Exception as exc:  # e.g. out of resources: report and go on with the others
            print(f"| {name} | {lanes} | {poly} | {f32} | {prefetch}/{stages} | failed: {str(exc)[:100]} ||||")
            continue
        print(f"| {name} | {lanes} | {poly} | {'y' if f32 else 'n'} | {prefetch}/{stages} | {fwd:.3f} | "
              f"{fwd / floor:.2f} | {fb:.3f} | {err:.1e} | {err_last:.1e} |", flush=True)


def _sass_loops(sass_text):
    """(instructions [(address, text)], loop spans [(start, end)] of backward branches, the innermost of them) of
    cuobjdump -sass text."""
    ins = [(int(a, 16), t) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", sass_text)]
    spans = []
    for addr, text in ins:
        jump = re.search(r"BRA\s.*?0x([0-9a-f]+)", text)
        if jump and int(jump.group(1), 16) < addr:
            spans.append((int(jump.group(1), 16), addr))
    inner = [(lo, hi) for lo, hi in spans if not any(lo <= a and b <= hi and (a, b) != (lo, hi) for a, b in spans)]
    return ins, spans, inner


def _hot_loop_counts(sass_text):
    """Opcode counts of the hot loop in cuobjdump -sass text: of the innermost loops (a backward branch with no other
    inside its range), the one with the most MUFU.EX2 (the unrolled tile; the other is the one-step tail)."""
    ins, spans, inner = _sass_loops(sass_text)
    best = collections.Counter()
    for lo, hi in inner:
        ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0] for a, t in ins if lo <= a <= hi)
        if ops["MUFU.EX2"] > best["MUFU.EX2"]:
            best = ops
    return best


def sass(args):
    """Offline sm_90 compile of the thread forwards (no GPU): registers, spills, hot-loop instruction mix."""
    from mamba_core.ops import selective_scan_triton_lanes as stl
    from mamba_core.ops import selective_scan_triton_thread as stt

    flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, B_VAR=True, C_VAR=True, NP=16,
                 CHUNK=sst.THREAD_CHUNK, T=8)
    kernels = [] if args.only else [("thread (default)", stt._thread_fwd_kernel, dict(LOCAL=False, BLOCK_D=32), 1,
                                     False)]
    for impl, (lanes, poly, f32, prefetch, stages, segs) in sst.THREAD_VARIANTS.items():
        if args.only and impl not in args.only.split(","):
            continue
        extra = dict(BLOCK_D=32 // lanes, S=lanes, POLY=poly, VEC=4 if f32 else 8)
        if stages:  # the pipelined kernel's full pass, and the LOCAL pass of a segmenting variant
            for local in (True, False) if segs else (False,):
                kernels.append((f"{impl}{(' LOCAL' if local else ' full') + ' pass' if segs else ''}",
                                stl._thread_lanes_seg_fwd_kernel, dict(extra, STAGES=stages, INTERP=False,
                                                                       LOCAL=local, T=sst.PIPELINED_TILE),
                                lanes, f32))
            continue
        kernel = stl._thread_lanes_pf_fwd_kernel if prefetch else stl._thread_lanes_fwd_kernel
        kernels.append((impl, kernel, extra, lanes, f32))
    keys = ("MUFU.EX2", "MUFU.RCP", "FFMA", "FMUL", "FADD", "FMNMX", "SHF.L.U32", "PRMT", "LDG", "LDS", "LDGSTS",
            "STG")
    print(f"sm_90, bf16 u/delta/z, var B/C, D, z, bias, softplus, N=16, CHUNK={sst.THREAD_CHUNK}, 1 warp. Per"
          " channel and step in the hot tile loop (thread count x S / T; T = 8, pipelined forwards"
          f" {sst.PIPELINED_TILE}; LDG/LDS/STG: vector or not):")
    print("| kernel | regs | spill (stack/local B) | " + " | ".join(keys) + " | SHFL | all instr. |")
    print("|---|---|---|" + "---|" * (len(keys) + 2))
    with __import__("tempfile").TemporaryDirectory() as tmp:
        for name, kernel, extra, lanes, f32 in kernels:
            consts = {k: v for k, v in dict(flags, **extra).items() if k in kernel.arg_names}
            regs, stack, local, sass_text = _cubin_usage(_compile_sm90(kernel, consts, f32, 1, tmp))
            ops = _hot_loop_counts(sass_text)
            shown = collections.Counter(ops)
            for op, count in ops.items():
                if op.split(".")[0] in ("LDG", "LDS", "LDGSTS", "STG"):
                    shown[op.split(".")[0]] += count if op.split(".")[0] != op else 0
            per = lanes / consts["T"]
            shfl = sum(v for k, v in ops.items() if k.startswith("SHFL"))
            print(f"| {name} | {regs} | {stack}/{local} | " + " | ".join(f"{shown[k] * per:.1f}" for k in keys)
                  + f" | {shfl * per:.1f} | {sum(ops.values()) * per:.1f} |", flush=True)


# ------------------------------------------------------------------------------------------- backward variants
BWD_SHAPES = ((8, 2048, 2048, 16), (1, 65536, 2048, 16))


def bwd_variants(args):
    """fwd+bwd and backward-only time of "auto" (default forward + scan backward), the thread backward and every
    THREAD_BWD_VARIANTS backward (each after the default forward), bf16, var B/C, D, z, bias, softplus; with the
    max relative error (max abs diff / max abs) of each gradient against "auto"'s. Variant by variant, both shapes
    each, so that a time limit (first compiles take ~15 s per variant) cuts whole rows at the end."""
    shapes = ((1, 40, 32, 8), (1, 33, 32, 4)) if SMOKE else BWD_SHAPES
    impls = ["auto", "thread"] + [f"bwd_{name}" for name in sst.THREAD_BWD_VARIANTS]
    if args.only:
        impls = ["auto"] + [impl for impl in impls[1:] if impl.removeprefix("bwd_") in args.only.split(",")]
    inputs = [make_inputs(batch, dim, seqlen, dstate, torch.bfloat16) for batch, seqlen, dim, dstate in shapes]
    names = [k for k in ARGS if inputs[0][k] is not None]
    refs = [None] * len(shapes)
    print("backward variants, bf16; bwd = torch.autograd.grad of a saved forward (retain_graph); errors: max abs "
          "diff / max abs of auto's gradient")
    print("| _impl | backward kernel | (batch, L, dim, N) | fwd+bwd ms | bwd ms | "
          + " | ".join(f"d{k}" for k in names) + " |")
    print("|---|---|---|---|---|" + "---|" * len(names))
    failures = 0
    for impl in impls:
        kernel = sst.KERNEL_PAIRS[impl][1]
        fn = (lambda *a, impl=impl, **k: selective_scan_triton(*a, _impl=impl, **k))
        for i, inp in enumerate(inputs):
            leaves = [inp[k] for k in names]
            try:
                out = call(fn, inp)
                dout = torch.randn_like(out, generator=torch.Generator(out.device).manual_seed(1))
                grads = torch.autograd.grad(out, leaves, dout, retain_graph=True)
                bwd = bench_ms(lambda out=out, dout=dout, leaves=leaves: torch.autograd.grad(out, leaves, dout,
                                                                                             retain_graph=True), rep=30)
                del out
                fb = bench_ms(fwd_bwd_fn(inp, fn), rep=30)
            except Exception as exc:  # e.g. out of resources: report and go on with the others
                print(f"| {impl} | {kernel} | {shapes[i]} | failed: {str(exc)[:120]} ||")
                failures += 1
                continue
            if refs[i] is None:
                refs[i] = [g.float() for g in grads]
            errs = [(g.float() - r).abs().max().item() / max(r.abs().max().item(), 1e-30)
                    for g, r in zip(grads, refs[i], strict=True)]
            print(f"| {impl} | {kernel} | {shapes[i]} | {fb:.3f} | {bwd:.3f} | "
                  + " | ".join(f"{e:.1e}" for e in errs) + " |", flush=True)
            del grads
    return failures


# (shape, dtype, chunks, segment counts) of --bwd-sweep; the thin shapes' counts bracket ~4..64 one-warp programs
# per SM; fp32: the exact (4-term) dB/dC channel sums
BWD_SWEEP = (((8, 2048, 2048, 16), torch.bfloat16, (16, 32, 64), (1, 2)),
             ((8, 2048, 2048, 16), torch.float32, (64,), (1,)),
             ((2, 2048, 2048, 16), torch.bfloat16, (16, 64), (1, 2, 4, 8)),
             ((1, 65536, 2048, 16), torch.bfloat16, (16, 64), (17, 33, 66, 132)),
             ((1, 1048576, 256, 16), torch.bfloat16, (64,), (132, 264, 528)),
             ((64, 1024, 1536, 16), torch.bfloat16, (16, 64), (1,)))


def bwd_sweep(args):
    """fwd+bwd ms of the default forward with the thread_dot backward over forward chunks (steps per saved state)
    and backward sequence segments, against "auto" at its defaults and the default forward with the scan backward
    (_impl thread_split2_poly1, the default until 2026-11-26); var B/C, D, z, bias, softplus. Shape by shape, so
    that a time limit cuts whole shapes at the end."""
    sweep = ((((1, 40, 32, 8), torch.float32, (16,), (1, 2)),) if SMOKE else BWD_SWEEP)
    print("| (batch, L, dim, N) | dtype | _impl | chunk | bwd segments | fwd+bwd ms |")
    print("|---|---|---|---|---|---|")
    saved = sst.OVERRIDES.get(("thread", "bwd"))
    index, count = args.shard
    for (batch, seqlen, dim, dstate), dtype, chunks, seg_counts in sweep[index::count]:
        inp = make_inputs(batch, dim, seqlen, dstate, dtype)
        rows = [("thread_split2_poly1", None, None), ("auto", None, None)]
        rows += [("bwd_thread_dot", c, n) for c in chunks for n in seg_counts]
        for impl, chunk, n_seg in rows:
            if n_seg is not None:
                sst.OVERRIDES[("thread", "bwd")] = (None, None, None, None, n_seg)
            try:
                fn = (lambda *a, impl=impl, chunk=chunk, **k: selective_scan_triton(*a, _impl=impl, _chunk=chunk, **k))
                fb = f"{bench_ms(fwd_bwd_fn(inp, fn), rep=20):.3f}"
            except Exception as exc:  # e.g. out of memory: report and go on with the others
                fb = f"failed: {str(exc)[:100]}"
            finally:
                sst.OVERRIDES.pop(("thread", "bwd"), None)
            print(f"| {(batch, seqlen, dim, dstate)} | {str(dtype)[6:]} | {impl} | {chunk or 'default'} | "
                  f"{n_seg or 'default'} | {fb} |", flush=True)
        del inp
        torch.cuda.empty_cache() if not SMOKE else None
    if saved is not None:
        sst.OVERRIDES[("thread", "bwd")] = saved


def _compile_sm90(kernel, consts, f32_bc, num_warps, tmp):
    """Offline sm_90 cubin of a scan kernel: bf16 sequence tensors (and B/C unless ``f32_bc``), unit time strides,
    16-divisible pointers and sizes (not the counts: dstate, chunks, segments); returns the cubin's path."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    half_tensors = ("u", "delta", "z", "out", "dout", "du", "ddelta", "dz")
    sig, cx, attrs = {}, {}, {}
    for i, arg in enumerate(kernel.arg_names):
        if arg in consts:
            sig[arg], cx[arg] = "constexpr", consts[arg]
        elif arg in ("s_ul", "s_dl", "s_zl", "s_ol", "s_An"):
            sig[arg], cx[arg] = "constexpr", 1
        elif arg.endswith("_ptr"):
            base = arg[:-4]
            sig[arg] = "*bf16" if base in half_tensors or (base in ("B", "C") and not f32_bc) else "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[arg] = "i32"
            if arg not in ("dstate", "n_chunks", "n_seg", "chunks_per_seg", "c_part"):
                attrs[(i,)] = [["tt.divisibility", 16]]
    compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=cx, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=dict(num_warps=num_warps))
    path = os.path.join(tmp, "k.cubin")
    with open(path, "wb") as f:
        f.write(compiled.asm["cubin"])
    return path


def _cubin_usage(path):
    """(registers, stack bytes, local bytes, SASS text) of a cubin, from the cuobjdump in Triton's NVIDIA backend."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    res = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True).stdout
    regs, stack, local = (re.search(rf"{k}:(\d+)", res).group(1) for k in ("REG", "STACK", "LOCAL"))
    return regs, stack, local, subprocess.run([tool, "-sass", path], capture_output=True, text=True).stdout


def _hot_path_counts(sass_text):
    """Opcode counts along the hot path of a kernel's innermost loops (a backward branch with no other inside its
    range), summed over those loops (see below which). A loop body split by an if/else (an unconditional forward
    branch ending the first arm) counts the common part and the larger arm: the full tile, not the one-step tail."""
    ins, spans, inner = _sass_loops(sass_text)
    nested = [(lo, hi) for lo, hi in inner if any(a <= lo and hi <= b and (a, b) != (lo, hi) for a, b in spans)]
    # loops inside the chunk loop (thread kernels); else the largest loop (scan: the chunk loop; carry pass: the
    # full-tile loop, not the one-step tail); loops run once per program (the segment fold) do not count
    inner = nested or [max(inner, key=lambda span: span[1] - span[0])]
    total = collections.Counter()

    def ops(lo, hi):
        return collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0] for a, t in ins if lo <= a < hi)

    # Triton-pipelined full-tile loops (cp.async: LDGSTS) run the one-step tail in loops of its own: count those
    piped = [(lo, hi) for lo, hi in inner if any(op.startswith("LDGSTS") for op in ops(lo, hi + 1))]
    inner = piped or inner

    for lo, hi in inner:
        arms = [(a, int(m.group(1), 16)) for a, t in ins
                if lo < a < hi and (m := re.match(r"BRA\s+0x([0-9a-f]+)", t)) and a < int(m.group(1), 16) <= hi]
        if not arms:
            total += ops(lo, hi + 1)
            continue
        split, join = max(arms, key=lambda arm: arm[1] - arm[0])  # the outermost if/else of the body
        first, second = ops(lo, split + 1), ops(split + 1, join)
        total += (first if sum(first.values()) >= sum(second.values()) else second) + ops(join, hi + 1)
    return total


def sass_bwd(args):
    """Offline sm_90 compile of the backward kernels (no GPU): registers, spills, hot-path instruction mix."""
    from mamba_core.ops import selective_scan_triton_thread_bwd as sttb

    flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, B_VAR=True, C_VAR=True, NP=16, CHUNK=16)
    # (name, kernel, constexprs, fp32 B/C, num_warps, channel-steps per thread on the hot path)
    block_d, _, warps = sst._pick_config("scan", 8, 2048, 2048, 16, 2048, torch.device("cpu"), chunk=16,
                                         backward=True)
    kernels = [("scan (auto)", sst._scan_bwd_kernel, dict(BLOCK_D=block_d), False, warps,
                block_d * 16 / (32 * warps))]
    thread = dict(BLOCK_D=32, T=2, TM=2, BC_DOT=False, POLY=0, INTERP=False, DOT_COLS=0, S=1, STAGES=0)
    kernels.append(("thread", sttb._thread_bwd_kernel, thread, False, 1, 2.0))
    compiled = set()
    for name, (bc_dot, f32, poly, _, tile, dot_cols, lanes, stages, shuffle, atomic) in \
            sst.THREAD_BWD_VARIANTS.items():
        if args.only and name not in args.only.split(","):
            continue
        tile = tile or 2
        if shuffle and lanes == 1:  # var B/C, 16 states, 32 channels: the butterfly fits
            bc_dot = 4 if atomic else 3
        key = (bc_dot, f32, poly, tile, dot_cols, lanes, stages)
        if key not in compiled:  # segments do not change the kernel
            compiled.add(key)
            # a thread walks `tile` steps of 1/lanes of a channel: tile/lanes channel-steps
            kernels.append((name, sttb._thread_bwd_kernel, dict(thread, BC_DOT=bc_dot, POLY=poly, T=tile, TM=tile,
                                                               DOT_COLS=dot_cols, BLOCK_D=32 // lanes, S=lanes,
                                                               STAGES=stages, EVEN_D=True),
                            f32, 1, tile / lanes))
    carry = {k: v for k, v in thread.items() if k in ("BLOCK_D", "T", "TM", "POLY")}
    kernels.append(("segment carry pass (all but the last segment)", sttb._thread_bwd_carry_kernel, carry, True, 1,
                    2.0))
    keys = ("MUFU.EX2", "FFMA", "FMUL", "FADD", "SHFL", "BAR", "RED/ATOM", "LDG", "LDGSTS", "STG", "LDS", "STS",
            "HMMA")
    print(f"sm_90, bf16 u/delta/z/dout, var B/C, D, z, bias, softplus, N=16, CHUNK=16; scan: BLOCK_D={block_d}, "
          f"{warps} warps; thread: BLOCK_D=32, T=2 (_t1: 1), 1 warp. Per channel and step (thread instructions) on "
          "the hot path of the innermost loops (thread: the chunk re-run and the backward tile loop; _split2: 2 lanes "
          "per channel, BLOCK_D=16):")
    print("| kernel | regs | spill (stack/local B) | "
          + " | ".join({"LDS": "LDS(M)", "STS": "STS(M)"}.get(k, k) for k in keys) + " | all instr. |")
    print("|---|---|---|" + "---|" * (len(keys) + 1))
    with __import__("tempfile").TemporaryDirectory() as tmp:
        for name, kernel, extra, f32, num_warps, steps in kernels:
            consts = {k: v for k, v in dict(flags, **extra).items() if k in kernel.arg_names}
            regs, stack, local, sass_text = _cubin_usage(_compile_sm90(kernel, consts, f32, num_warps, tmp))
            ops = _hot_path_counts(sass_text)
            merged = collections.Counter()
            for op, count in ops.items():
                base = op.split(".")[0]
                key = op if op == "MUFU.EX2" else {"RED": "RED/ATOM", "ATOM": "RED/ATOM", "ATOMG": "RED/ATOM",
                                                   "REDG": "RED/ATOM", "STSM": "STS", "LDSM": "LDS"}.get(base, base)
                merged[key] += count
            print(f"| {name} | {regs} | {stack}/{local} | "
                  + " | ".join(f"{merged.get(k, 0) / steps:.1f}" for k in keys)
                  + f" | {sum(ops.values()) / steps:.1f} |", flush=True)


def overhead(args):
    """Host time per call: forward (no grad) and fwd+bwd at a toy shape, where the GPU work is a few microseconds
    and a timing measures the Python and launch path, and at (8, 2048, 2048, 16): do_bench ms, and the host's
    enqueue time per call (perf_counter over 200 calls, synchronized only at the end), then the forward's top
    functions under cProfile at the toy shape (interpreter smoke run: the toy shape, 2 calls)."""
    import cProfile
    import pstats

    print("| (batch, L, dim, N) | what | do_bench ms | host ms per call (calls in a row, one sync) |")
    print("|---|---|---|---|")
    calls = 2 if SMOKE else 200
    for batch, seqlen, dim, dstate in ((1, 64, 32, 16),) + (() if SMOKE else ((8, 2048, 2048, 16),)):
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
        fb = fwd_bwd_fn(inp)
        for what, fn in (("fwd", lambda inp=inp: call(selective_scan_triton, inp)), ("fwd+bwd", fb)):
            with torch.set_grad_enabled(what != "fwd"):
                ms = settled_ms(fn, rep=50)
                sync()
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                host = (time.perf_counter() - t0) / calls * 1e3
                sync()
            print(f"| ({batch}, {seqlen}, {dim}, {dstate}) | {what} | {ms:.3f} | {host:.3f} |", flush=True)
        if seqlen == 64:
            prof = cProfile.Profile()
            with torch.no_grad():
                prof.runcall(lambda inp=inp: [call(selective_scan_triton, inp) for _ in range(calls)])
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        del inp, fb


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("check", "segments", "bench", "decode", "quick", "variants", "sass", "sass-bwd",
                 "bwd-variants", "bwd-sweep", "ab", "overhead"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--only", default="", metavar="NAMES",
                   help="--sass, --variants: only these THREAD_VARIANTS; --bwd-variants: only these "
                        "THREAD_BWD_VARIANTS (comma-separated)")
    p.add_argument("--fb", action="store_true", help="--ab times forward+backward (the _impl's pair) at "
                   "AB_FB_SHAPES instead of the forward alone")
    p.add_argument("--rows", default="", metavar="I,J",
                   help="--bench: only these rows of its table (0-based, comma-separated; default all five)")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="--check runs rows I, I+N, I+2N, ... (N processes side by side share the compile time)")
    args = p.parse_args()
    args.shard = tuple(int(x) for x in args.shard.split("/"))
    if args.sass_bwd and not any(getattr(args, f) for f in ("check", "segments", "bench", "decode", "quick",
                                                            "variants", "sass", "bwd_variants", "bwd_sweep")):
        raise SystemExit(sass_bwd(args))
    if args.sass and not any(getattr(args, f) for f in ("check", "segments", "bench", "decode", "quick",
                                                        "variants")):
        raise SystemExit(sass(args))
    if not torch.cuda.is_available() and not SMOKE:
        raise SystemExit("benchmarks/scan.py needs a CUDA GPU (or TRITON_INTERPRET=1 for a toy-size smoke run)")
    print(DEV if SMOKE else torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    failures = 0
    for flag, fn in (("quick", quick), ("check", check), ("segments", segments), ("bench", bench),
                     ("decode", decode), ("variants", variants), ("sass", sass), ("sass_bwd", sass_bwd),
                     ("bwd_variants", bwd_variants), ("bwd_sweep", bwd_sweep), ("ab", ab), ("overhead", overhead)):
        if getattr(args, flag):
            t0 = time.time()
            try:
                failures += fn(args) or 0
            except Exception:  # report and go on: one broken section must not waste the rest of a GPU run
                traceback.print_exc()
                failures += 1
            print(f"[{flag} took {time.time() - t0:.0f}s]", flush=True)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
