"""Argument checks shared by every selective-scan implementation (reference and Triton).

Each check raises ValueError naming the offending argument, so that a caller who passes a wrong shape learns which
tensor is wrong instead of meeting an einsum or kernel failure deep inside.
"""

from __future__ import annotations

import os

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what the Triton kernels compute on


def _require_float(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be a floating-point tensor (fp16/bf16/fp32/fp64), got dtype {t.dtype}")


def _require_shape(name: str, t: torch.Tensor, shape: tuple, what: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {what} = {tuple(shape)}, got {tuple(t.shape)}")


def check_bc(name: str, t: torch.Tensor, batch: int, dim: int, dstate: int, seqlen: int) -> None:
    """B or C: fixed (dim, N), input-dependent (batch, N, L) or grouped (batch, G, N, L) with G dividing dim."""
    _require_float(name, t)
    if t.dim() == 2:
        _require_shape(name, t, (dim, dstate), "(dim, N)")
    elif t.dim() == 3:
        _require_shape(name, t, (batch, dstate, seqlen), "(batch, N, L)")
    elif t.dim() == 4:
        groups = t.shape[1]
        _require_shape(name, t, (batch, groups, dstate, seqlen), "(batch, G, N, L)")
        if groups == 0 or dim % groups != 0:
            raise ValueError(f"{name} has {groups} groups, which must divide dim={dim}")
    else:
        raise ValueError(f"{name} must be (dim, N), (batch, N, L) or (batch, G, N, L); got {t.dim()} dims")


def check_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None) -> tuple[int, int, int, int]:
    """Validate selective-scan arguments; return (batch, dim, seqlen, dstate)."""
    _require_float("u", u)
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, seqlen = u.shape
    _require_float("delta", delta)
    _require_shape("delta", delta, (batch, dim, seqlen), "(batch, dim, L) like u")
    _require_float("A", A)
    if A.is_complex() or A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be a real (dim, N) tensor with dim={dim}, got shape {tuple(A.shape)}")
    dstate = A.shape[1]
    check_bc("B", B, batch, dim, dstate, seqlen)
    check_bc("C", C, batch, dim, dstate, seqlen)
    if D is not None:
        _require_float("D", D)
        _require_shape("D", D, (dim,), "(dim,)")
    if z is not None:
        _require_float("z", z)
        _require_shape("z", z, (batch, dim, seqlen), "(batch, dim, L) like u")
    if delta_bias is not None:
        _require_float("delta_bias", delta_bias)
        _require_shape("delta_bias", delta_bias, (dim,), "(dim,)")
    devices = {t.device for t in (u, delta, A, B, C, D, z, delta_bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all selective-scan tensors must be on one device, got {sorted(map(str, devices))}")
    return batch, dim, seqlen, dstate


def check_state_update_inputs(state, x, dt, A, B, C, D=None, z=None, dt_bias=None) -> tuple[int, int, int]:
    """Validate one decoding step's arguments; return (batch, dim, dstate)."""
    _require_float("state", state)
    if state.dim() != 3:
        raise ValueError(f"state must be (batch, dim, N), got shape {tuple(state.shape)}")
    batch, dim, dstate = state.shape
    for name, t in (("x", x), ("dt", dt)):
        _require_float(name, t)
        _require_shape(name, t, (batch, dim), "(batch, dim)")
    _require_float("A", A)
    _require_shape("A", A, (dim, dstate), "(dim, N)")
    for name, t in (("B", B), ("C", C)):
        _require_float(name, t)
        if t.dim() == 2:
            _require_shape(name, t, (batch, dstate), "(batch, N)")
        elif t.dim() == 3:
            _require_shape(name, t, (batch, t.shape[1], dstate), "(batch, G, N)")
            if t.shape[1] == 0 or dim % t.shape[1] != 0:
                raise ValueError(f"{name} has {t.shape[1]} groups, which must divide dim={dim}")
        else:
            raise ValueError(f"{name} must be (batch, N) or (batch, G, N), got shape {tuple(t.shape)}")
    if D is not None:
        _require_float("D", D)
        _require_shape("D", D, (dim,), "(dim,)")
    if z is not None:
        _require_float("z", z)
        _require_shape("z", z, (batch, dim), "(batch, dim)")
    if dt_bias is not None:
        _require_float("dt_bias", dt_bias)
        _require_shape("dt_bias", dt_bias, (dim,), "(dim,)")
    return batch, dim, dstate


def triton_interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def check_triton_tensors(named: dict, op: str, dtypes=None) -> None:
    """Tensors a Triton kernel can take: on CUDA (or on the CPU under TRITON_INTERPRET=1), all on one device, and,
    for the names in ``dtypes`` (all when None), of a kernel dtype (fp32, fp16, bf16). ``op`` names the operator."""
    interpret = triton_interpreting()
    present = {name: t for name, t in named.items() if t is not None}
    for name, t in present.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cuda" and not (interpret and t.device.type == "cpu"):
            raise ValueError(f"{name} is on {t.device}; the Triton {op} needs CUDA tensors "
                             "(or CPU tensors with TRITON_INTERPRET=1)")
        if (dtypes is None or name in dtypes) and t.dtype not in KERNEL_DTYPES:
            raise ValueError(f"{name} has dtype {t.dtype}; the Triton {op} takes fp32, fp16 or bf16")
    devices = {t.device for t in present.values()}
    if len(devices) > 1:
        raise ValueError(f"all {op} tensors must be on one device, got {sorted(map(str, devices))}")
