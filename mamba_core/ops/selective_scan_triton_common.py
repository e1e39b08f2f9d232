"""Triton helpers shared by the selective-scan kernels (``selective_scan_triton`` and ``..._thread``)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def softplus_fp32(x):
    """log(1 + e^x) in fp32, x itself above 20 where the correction is below fp32 resolution (as mamba_ssm)."""
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))), x)
