"""Selective-scan, causal-conv and decode-step operators, each with a kernel chosen per device.

``selective_scan_fn`` and ``selective_state_update`` run the Triton kernels on CUDA tensors and the PyTorch
references elsewhere. Setting the environment variable ``MAMBA_CORE_FORCE_REFERENCE=1`` (or passing
``backend="reference"``) forces the references everywhere, e.g. to check a kernel against them on the GPU.
"""

from __future__ import annotations

import os

from .causal_conv1d import causal_conv1d_fn, causal_conv1d_update, conv_state_from_sequence
from .checks import check_scan_inputs, check_state_update_inputs
from .selective_scan_ref import selective_scan_chunked, selective_scan_ref
from .selective_state_update_ref import selective_state_update_ref

BACKENDS = ("auto", "reference", "triton")

__all__ = [
    "BACKENDS",
    "causal_conv1d_fn",
    "causal_conv1d_update",
    "check_scan_inputs",
    "check_state_update_inputs",
    "conv_state_from_sequence",
    "resolve_backend",
    "selective_scan_chunked",
    "selective_scan_fn",
    "selective_scan_ref",
    "selective_state_update",
    "selective_state_update_ref",
]


def resolve_backend(backend: str, is_cuda: bool) -> str:
    """Which implementation runs: 'triton' or 'reference' for the requested backend and device."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if os.environ.get("MAMBA_CORE_FORCE_REFERENCE", "0") not in ("", "0"):
        return "reference"
    if backend == "auto":
        return "triton" if is_cuda else "reference"
    return backend


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False, backend: str = "auto", initial_state=None):
    """Selective scan (see :func:`selective_scan_ref` for shapes and semantics) on the best kernel for the device.

    With an ``initial_state`` (batch, dim, N) the Triton path adds the start state's decaying share in PyTorch to
    the kernel's zero-start scan (``selective_scan_initial_state``).
    """
    if resolve_backend(backend, u.is_cuda) == "triton":
        if initial_state is not None:
            from .selective_scan_initial_state import selective_scan_triton_from_state

            return selective_scan_triton_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                    return_last_state, initial_state)
        from .selective_scan_triton import selective_scan_triton

        return selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                  initial_state=initial_state)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                           backend: str = "auto"):
    """One decoding step (see :func:`selective_state_update_ref`), Triton on CUDA, PyTorch elsewhere."""
    if resolve_backend(backend, state.is_cuda) == "triton":
        from .selective_state_update_triton import selective_state_update_triton

        return selective_state_update_triton(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    return selective_state_update_ref(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
