"""Causal depthwise 1-D convolution over a sequence and its single-step form on a rolling state.

The Mamba block mixes each channel with its last ``width`` (default 4) inputs before the scan. Over a whole
sequence this is a grouped conv1d padded on the left; when decoding, the last ``width`` inputs are kept in a
``conv_state`` (batch, dim, width) that is shifted by one each step, so both paths give the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_ACTIVATIONS = (None, "silu", "swish")


def _check(weight: torch.Tensor, dim: int, activation) -> None:
    if weight.dim() != 2 or weight.shape[0] != dim:
        raise ValueError(f"weight must be (dim, width) with dim={dim}, got shape {tuple(weight.shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")


def _activate(x: torch.Tensor, activation) -> torch.Tensor:
    return F.silu(x) if activation in ("silu", "swish") else x


def causal_conv1d_fn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     activation: str | None = None) -> torch.Tensor:
    """Causal depthwise convolution. x: (batch, dim, L); weight: (dim, width); bias: (dim,). Returns (batch, dim, L)."""
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, dim, L), got shape {tuple(x.shape)}")
    _check(weight, x.shape[1], activation)
    width = weight.shape[1]
    out = F.conv1d(F.pad(x, (width - 1, 0)), weight.unsqueeze(1).to(x.dtype),
                   None if bias is None else bias.to(x.dtype), groups=x.shape[1])
    return _activate(out, activation)


def causal_conv1d_update(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, activation: str | None = None) -> torch.Tensor:
    """One step: shift ``conv_state`` (batch, dim, width) left in place, append x (batch, dim), return (batch, dim)."""
    if x.dim() != 2 or conv_state.dim() != 3 or conv_state.shape[:2] != x.shape:
        raise ValueError(f"x must be (batch, dim) and conv_state (batch, dim, width); got {tuple(x.shape)} "
                         f"and {tuple(conv_state.shape)}")
    _check(weight, x.shape[1], activation)
    if conv_state.shape[2] != weight.shape[1]:
        raise ValueError(f"conv_state width {conv_state.shape[2]} != weight width {weight.shape[1]}")
    conv_state.copy_(torch.roll(conv_state, shifts=-1, dims=-1))
    conv_state[:, :, -1] = x
    out = (conv_state * weight.to(conv_state.dtype)).sum(-1)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return _activate(out, activation).to(x.dtype)


def conv_state_from_sequence(x: torch.Tensor, width: int) -> torch.Tensor:
    """The rolling conv state after reading x (batch, dim, L): its last ``width`` inputs, zero-padded on the left."""
    return F.pad(x, (width - x.shape[-1], 0)) if x.shape[-1] < width else x[..., -width:].clone()
