"""The Mamba block (selective SSM mixer) with mamba_ssm's constructor, parameter names, shapes and initialisation.

    x, z   = in_proj(h).chunk(2)                  (batch, 2 * d_inner, L): batched matmuls keep L contiguous
    x      = silu(causal_conv1d(x))               depthwise, width d_conv
    dt,B,C = split(x_proj(x))                     dt: dt_rank, B and C: d_state each (the *selective* part)
    dt     = dt_proj.weight @ dt                  (its bias is applied inside the scan, before softplus)
    y      = selective_scan(x, dt, A=-exp(A_log), B, C, D, z, delta_bias=dt_proj.bias, softplus)
    out    = out_proj(y)

Because names and shapes match mamba_ssm, a mamba_ssm ``Mamba`` state_dict loads with ``strict=True``.
``forward`` runs a whole sequence (and can prefill a decoding cache); ``step`` advances one token on a
constant-size cache (conv_state, ssm_state), giving the same numbers as ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import (
    causal_conv1d_fn,
    causal_conv1d_update,
    conv_state_from_sequence,
    selective_scan_fn,
    selective_state_update,
)


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """The y with softplus(y) = x, for x > 0 (used so that softplus(dt_proj.bias) starts at the sampled dt)."""
    return x + torch.log(-torch.expm1(-x))


def _project(linear: nn.Linear, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """``linear`` over the channel axis of x (batch, in, L): (batch, out, L), contiguous (one batched matmul that
    reads x in whatever layout it has); ``bias=False`` leaves the bias out (dt_proj's is added inside the scan)."""
    weight = linear.weight
    out = torch.bmm(weight.unsqueeze(0).expand(x.shape[0], *weight.shape), x)
    if bias and linear.bias is not None:
        out = out + linear.bias.to(out.dtype)[:, None]
    return out


class Mamba(nn.Module):
    """Selective state space mixer. Input and output (batch, L, d_model).

    Args follow mamba_ssm.modules.mamba_simple.Mamba. ``use_fast_path=False`` (or the environment variable
    MAMBA_CORE_FORCE_REFERENCE=1) runs the PyTorch reference scan even on CUDA.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: float = 2, dt_rank="auto",
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init: str = "random", dt_scale: float = 1.0,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 use_fast_path: bool = True, layer_idx: int | None = None, device=None, dtype=None):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias, **factory)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias, **factory)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

        dt_init_std = self.dt_rank ** -0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                self.dt_proj.weight.fill_(dt_init_std)
            else:
                self.dt_proj.weight.uniform_(-dt_init_std, dt_init_std)
            dt = torch.exp(torch.rand(self.d_inner, **factory).float() * (math.log(dt_max) - math.log(dt_min))
                           + math.log(dt_min)).clamp(min=dt_init_floor)
            self.dt_proj.bias.copy_(inverse_softplus(dt))
        self.dt_proj.bias._no_reinit = True

        # S4D-real initialisation: A = -(1, 2, ..., N) for every channel, stored as its log (kept in fp32).
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.D._no_weight_decay = True

    @property
    def backend(self) -> str:
        return "auto" if self.use_fast_path else "reference"

    def _ssm_params(self, x: torch.Tensor):
        """dt (before bias), B and C from the conv output x (..., d_inner)."""
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.linear(dt, self.dt_proj.weight), B, C

    def forward(self, hidden_states: torch.Tensor, inference_cache: tuple | None = None,
                continue_cache: bool = False) -> torch.Tensor:
        """hidden_states (batch, L, d_model) -> (batch, L, d_model).

        If ``inference_cache`` = (conv_state, ssm_state) is given, it is filled with the state after the last
        token (prefill), ready for :meth:`step`. With ``continue_cache`` the sequence starts from that state
        instead of from zeros (it continues the tokens the cache has read: chunked prefill, or state passing
        between training batches); the cache holds no gradient, so none flows into earlier pieces.
        """
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.d_model:
            raise ValueError(f"hidden_states must be (batch, L, {self.d_model}), got {tuple(hidden_states.shape)}")
        seqlen = hidden_states.shape[1]
        if continue_cache and inference_cache is None:
            raise ValueError("continue_cache needs an inference_cache to continue from")
        # Every (batch, channels, L) tensor below comes out of a batched matmul with L as its contiguous axis, as
        # the conv and the scan read it: transposing (batch, L, channels) copies instead took 46% of the GPU time
        # of a DNA training step at L = 2^20 (benchmarks/README.md, run 10).
        x, z = _project(self.in_proj, hidden_states.mT).chunk(2, dim=1)          # (batch, d_inner, L) each
        x, start_state = self._conv_with_cache(x, inference_cache, continue_cache)
        dt, B, C = torch.split(_project(self.x_proj, x), [self.dt_rank, self.d_state, self.d_state], dim=1)
        dt = _project(self.dt_proj, dt, bias=False)
        A = -torch.exp(self.A_log.float())
        result = selective_scan_fn(
            x, dt, A, B, C, self.D.float(), z=z,
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
            return_last_state=inference_cache is not None, backend=self.backend, initial_state=start_state)
        if inference_cache is not None:
            y, last_state = result
            inference_cache[1].copy_(last_state.detach())
        else:
            y = result
        assert y.shape[-1] == seqlen
        out = torch.bmm(y.mT, self.out_proj.weight.mT.unsqueeze(0).expand(y.shape[0], -1, -1))  # (batch, L, d_model)
        return out if self.out_proj.bias is None else out + self.out_proj.bias.to(out.dtype)

    def _conv_with_cache(self, x: torch.Tensor, inference_cache: tuple | None, continue_cache: bool):
        """silu(causal conv(x)), the conv state written to the cache, and the SSM start state (None: zeros).

        Continuing, the conv window reaches back into the cached last ``d_conv`` inputs, and the SSM starts from
        a copy of the cached state (the cache is overwritten below, while autograd may still need the start)."""
        seqlen, start_state = x.shape[-1], None
        if continue_cache:
            conv_state, ssm_state = inference_cache
            x = torch.cat([conv_state[..., 1:].to(x.dtype), x], dim=-1)
            start_state = ssm_state.detach().clone()
        if inference_cache is not None:
            inference_cache[0].copy_(conv_state_from_sequence(x, self.d_conv).detach())
        x = causal_conv1d_fn(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        return x[..., -seqlen:], start_state

    def allocate_inference_cache(self, batch_size: int, dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (conv_state (batch, d_inner, d_conv), ssm_state (batch, d_inner, d_state) fp32) for decoding."""
        device = device or self.out_proj.weight.device
        conv_dtype = dtype or self.conv1d.weight.dtype
        conv_state = torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=conv_dtype)
        ssm_state = torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=torch.float32)
        return conv_state, ssm_state

    def step(self, hidden_states: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor):
        """One token: hidden_states (batch, 1, d_model) -> (out (batch, 1, d_model), conv_state, ssm_state).

        The two states are updated in place; their size does not depend on how many tokens came before.
        """
        if hidden_states.dim() != 3 or hidden_states.shape[1] != 1:
            raise ValueError(f"step takes one token (batch, 1, d_model), got {tuple(hidden_states.shape)}")
        x, z = self.in_proj(hidden_states[:, 0]).chunk(2, dim=-1)               # (batch, d_inner)
        x = causal_conv1d_update(x, conv_state, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu")
        dt, B, C = self._ssm_params(x)
        A = -torch.exp(self.A_log.float())
        y = selective_state_update(ssm_state, x, dt, A, B, C, self.D.float(), z=z,
                                   dt_bias=self.dt_proj.bias.float(), dt_softplus=True, backend=self.backend)
        return self.out_proj(y).unsqueeze(1), conv_state, ssm_state
