"""Pre-norm residual block of the Mamba stack (mamba_ssm's ``Block``) and its optional gated MLP.

mamba_ssm's convention, kept so checkpoints and numerics carry over: each block receives the mixer output of the
previous block *and* the running residual, adds them, normalises, and runs its mixer:

    residual = hidden + residual          (residual kept in fp32 when residual_in_fp32)
    hidden   = mixer(norm(residual))
    [residual = hidden + residual; hidden = mlp(norm2(residual))]     when an MLP is present
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedMLP(nn.Module):
    """SwiGLU MLP: fc2(y * silu(gate)) with (y, gate) = fc1(x).chunk(2); hidden rounded up to a multiple of 128."""

    def __init__(self, in_features: int, hidden_features: int, multiple_of: int = 128, device=None, dtype=None):
        super().__init__()
        hidden = (hidden_features + multiple_of - 1) // multiple_of * multiple_of
        self.fc1 = nn.Linear(in_features, 2 * hidden, bias=False, device=device, dtype=dtype)
        self.fc2 = nn.Linear(hidden, in_features, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * F.silu(gate))


class Block(nn.Module):
    """mixer(norm(hidden + residual)) with the residual carried separately; see the module docstring."""

    def __init__(self, dim: int, mixer: nn.Module, norm: nn.Module, mlp: nn.Module | None = None,
                 norm2: nn.Module | None = None, residual_in_fp32: bool = False):
        super().__init__()
        if (mlp is None) != (norm2 is None):
            raise ValueError("mlp and norm2 must be given together")
        self.dim = dim
        self.mixer = mixer
        self.norm = norm
        self.residual_in_fp32 = residual_in_fp32
        if mlp is not None:
            self.norm2 = norm2
            self.mlp = mlp
        else:
            self.mlp = None

    def _add_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None, norm: nn.Module):
        residual = hidden if residual is None else hidden + residual
        normed = norm(residual.to(norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return normed, residual

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None, inference_cache=None,
                continue_cache: bool = False):
        normed, residual = self._add_norm(hidden_states, residual, self.norm)
        if continue_cache:  # only causal mixers continue a cache (Mamba.forward's continue_cache)
            hidden_states = self.mixer(normed, inference_cache=inference_cache, continue_cache=True)
        else:
            hidden_states = self.mixer(normed, inference_cache=inference_cache)
        if self.mlp is not None:
            normed, residual = self._add_norm(hidden_states, residual, self.norm2)
            hidden_states = self.mlp(normed)
        return hidden_states, residual

    def step(self, hidden_states: torch.Tensor, residual: torch.Tensor | None, cache: tuple):
        """One token (batch, 1, dim) through norm + mixer.step (+ MLP); ``cache`` is the mixer's (conv, ssm) state."""
        normed, residual = self._add_norm(hidden_states, residual, self.norm)
        hidden_states, _, _ = self.mixer.step(normed, *cache)
        if self.mlp is not None:
            normed, residual = self._add_norm(hidden_states, residual, self.norm2)
            hidden_states = self.mlp(normed)
        return hidden_states, residual
