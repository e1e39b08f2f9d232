"""Bidirectional Mamba: one Mamba reads the sequence forward, another reads it reversed; outputs are summed.

Used for classification (e.g. DNA windows, as in Caduceus' BiMamba), where every position may see the whole
window. It is not causal, so it has no decoding step.
"""

from __future__ import annotations

import torch
from torch import nn

from .mamba_simple import Mamba


class BiMamba(nn.Module):
    """forward(x) = fwd(x) + flip(rev(flip(x))) over the length axis. x: (batch, L, d_model).

    ``tie_projections=True`` shares in_proj and out_proj between the two directions (Caduceus' weight tying),
    roughly halving the extra parameters.
    """

    def __init__(self, d_model: int, tie_projections: bool = False, **mamba_kwargs):
        super().__init__()
        self.d_model = d_model
        self.fwd = Mamba(d_model, **mamba_kwargs)
        self.rev = Mamba(d_model, **mamba_kwargs)
        self.tie_projections = tie_projections
        if tie_projections:
            self.rev.in_proj = self.fwd.in_proj
            self.rev.out_proj = self.fwd.out_proj

    def forward(self, hidden_states: torch.Tensor, inference_cache=None) -> torch.Tensor:
        if inference_cache is not None:
            raise ValueError("BiMamba is not causal and cannot fill a decoding cache")
        return self.fwd(hidden_states) + self.rev(hidden_states.flip(1)).flip(1)
