"""Triton helpers shared by the selective-scan kernels (``selective_scan_triton`` and ``..._thread``), and the
launch arithmetic of their host code."""

from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

from .checks import triton_interpreting


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for launch sizes. ``triton.cdiv`` and ``triton.next_power_of_2`` are ConstexprFunctions whose
    every host call costs ~6 us (the forward made five: a tenth of its Python time)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, n - 1).bit_length()


# The thread-per-channel kernels compute softplus(delta), and their forwards z * sigmoid(z), of half (bf16/fp16)
# inputs with the SFU's approximate log2 and a fast division (MUFU.LG2 / MUFU.RCP): libdevice's accurate logf is ~12
# FMA-pipe instructions, and in the pipelined forward's sm_90 hot loop the two took 853 -> 688 instructions per
# 8-step tile (`benchmarks/scan.py --sass`; forward 0.339 -> 0.324 ms on the H100, run 10). Their error
# (lg2.approx: ~1e-7 absolute; __fdividef: 2 ulp) is far below the 2^-8 relative resolution of the half inputs; fp32
# inputs keep the accurate forms. MAMBA_CORE_SCAN_EXACT_MATH=1 (read at import) keeps them for every dtype; the
# interpreter, which has neither intrinsic, always does. The thread backward's recompute uses the same softplus as the
# forwards.
FAST_HALF_MATH = tl.constexpr(not triton_interpreting() and os.environ.get("MAMBA_CORE_SCAN_EXACT_MATH", "0") != "1")


@triton.jit
def softplus_fp32(x, FAST: tl.constexpr = False):
    """log(1 + e^x) in fp32, x itself above 20 where the correction is below fp32 resolution (as mamba_ssm); FAST
    (for half-precision inputs, see FAST_HALF_MATH): with the approximate log."""
    w = 1.0 + tl.exp(tl.minimum(x, 20.0))
    if FAST and FAST_HALF_MATH:
        sp = libdevice.fast_logf(w)
    else:
        sp = tl.log(w)
    return tl.where(x <= 20.0, sp, x)


@triton.jit
def silu_gate(y, z_in):
    """y * z * sigmoid(z) in fp32 for a z tile as loaded: for half-precision z (FAST_HALF_MATH) as
    y * z / (1 + 2^(-z log2 e)) with the fast division (0 where the exponential overflows, as the limit)."""
    z = z_in.to(tl.float32)
    if z_in.dtype != tl.float32 and FAST_HALF_MATH:
        out = y * libdevice.fast_dividef(z, 1.0 + tl.exp2(z * -1.4426950408889634))
    else:
        out = y * z * tl.sigmoid(z)
    return out


@triton.jit
def channel_bias_and_d(bias_ptr, D_ptr, d, dmask, HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr):
    """Per-channel delta_bias and D as fp32 (BLOCK_D,) vectors, zeros when absent."""
    bias = tl.zeros(d.shape, dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    Dv = tl.zeros(d.shape, dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=dmask, other=0.0).to(tl.float32)
    return bias, Dv
