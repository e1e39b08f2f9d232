"""Triton helpers shared by the selective-scan kernels (``selective_scan_triton`` and ``..._thread``)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def softplus_fp32(x):
    """log(1 + e^x) in fp32, x itself above 20 where the correction is below fp32 resolution (as mamba_ssm)."""
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))), x)


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
