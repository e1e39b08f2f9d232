"""Residual blocks of the SaShiMi U-Net, each usable in parallel (``forward``) and recurrent (``step``) mode.

Three block types, switchable per stage (the Mamba paper's Table 5 ablation on SC09):

* ``"mamba"``: ``x + Mamba(norm(x))`` with :class:`mamba_core.modules.Mamba` (no MLP: in Mamba's SC09 setup a Mamba
  block replaces SaShiMi's S4 + MLP pair).
* ``"s4d"``: SaShiMi's pair ``x + S4D(norm(x))`` then ``x + MLP(norm(x))``, with an S4D-style diagonal SSM
  (complex diagonal A, S4D-Lin init, ZOH discretisation, GELU + GLU output projection).
* ``"mha"``: ``x + CausalSelfAttention(norm(x))`` then the MLP (step mode keeps a key/value cache, so its memory
  grows with the number of steps, unlike the SSM blocks).

Every block has ``forward(x (B, L, D)) -> (B, L, D)``, ``init_state(batch, device, dtype)`` and
``step(x (B, D), state) -> (y (B, D), state)``; ``step`` over a sequence reproduces ``forward``. The Mamba and S4D
states are updated in place and returned as the same objects, which lets :mod:`audio.graph_generation` capture the
step in a CUDA graph; the attention cache is concatenated (new tensors every step), so models with an ``"mha"`` stage
are sampled with the eager loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mamba_core.modules import Mamba, RMSNorm

BLOCK_TYPES = ("mamba", "s4d", "mha")


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "rms":
        return RMSNorm(dim)
    raise ValueError(f"norm must be 'layer' or 'rms', got {kind!r}")


class MambaResidual(nn.Module):
    """x + Mamba(norm(x)); its recurrent state is Mamba's constant-size (conv_state, ssm_state)."""

    def __init__(self, dim: int, norm: str = "layer", d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.mixer = Mamba(dim, d_state=d_state, d_conv=d_conv, expand=expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))

    def init_state(self, batch_size: int, device=None, dtype=None):
        return self.mixer.allocate_inference_cache(batch_size, dtype=dtype, device=device)

    def step(self, x: torch.Tensor, state):
        out, _, _ = self.mixer.step(self.norm(x).unsqueeze(1), *state)
        return x + out[:, 0], state


class S4DLayer(nn.Module):
    """Diagonal SSM per channel: y = K * u + D u with K[l] = 2 Re(sum_n C_n dB_n exp(dt A_n l)), then GELU + GLU.

    A_n = -exp(A_real_log_n) + i A_imag_n (S4D-Lin: -1/2 + i pi n), dB = (exp(dt A) - 1) / A (ZOH with B = 1),
    ``d_state`` real numbers = d_state / 2 complex modes (conjugate pairs give the factor 2 Re).
    """

    def __init__(self, dim: int, d_state: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        modes = d_state // 2
        self.dim, self.modes = dim, modes
        log_dt = torch.rand(dim) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.A_real_log = nn.Parameter(torch.full((dim, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(modes, dtype=torch.float32).repeat(dim, 1))
        self.C = nn.Parameter(torch.randn(dim, modes, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(dim))
        for p in (self.log_dt, self.A_real_log, self.A_imag):
            p._no_weight_decay = True
        self.output = nn.Linear(dim, 2 * dim)

    def _discrete(self):
        """dt * A (dim, modes) and C * dB (dim, modes), complex64."""
        A = torch.complex(-torch.exp(self.A_real_log.float()), self.A_imag.float())
        dtA = torch.exp(self.log_dt.float()).unsqueeze(-1) * A
        C = torch.view_as_complex(self.C.float().contiguous())
        return dtA, C * torch.expm1(dtA) / A

    def kernel(self, length: int) -> torch.Tensor:
        """Convolution kernel (dim, length), fp32."""
        dtA, CdB = self._discrete()
        powers = torch.exp(dtA.unsqueeze(-1) * torch.arange(length, device=dtA.device))  # (dim, modes, L)
        return 2 * torch.einsum("hn,hnl->hl", CdB, powers).real

    def _post(self, y: torch.Tensor) -> torch.Tensor:
        return F.glu(self.output(F.gelu(y)), dim=-1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[1]
        k = self.kernel(length)
        u_t = u.float().transpose(1, 2)  # (B, dim, L)
        n = 2 * length
        y = torch.fft.irfft(torch.fft.rfft(u_t, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
        y = y + self.D.float().unsqueeze(-1) * u_t
        return self._post(y.transpose(1, 2).to(u.dtype))

    def init_state(self, batch_size: int, device=None, dtype=None):
        return torch.zeros(batch_size, self.dim, self.modes, dtype=torch.complex64, device=device)

    def step(self, u: torch.Tensor, state: torch.Tensor):
        dtA, CdB = self._discrete()
        state.mul_(torch.exp(dtA)).add_(u.float().unsqueeze(-1).to(state.dtype))
        y = 2 * (state * CdB).sum(-1).real + self.D.float() * u.float()
        return self._post(y.to(u.dtype)), state


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (no positional encoding: causal masking orders the positions)."""

    def __init__(self, dim: int, head_dim: int = 64):
        super().__init__()
        if dim % head_dim:
            head_dim = dim  # small test models: one head
        self.n_heads, self.head_dim = dim // head_dim, head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        shape = x.shape[:-1] + (self.n_heads, self.head_dim)
        return [t.reshape(shape).transpose(1, 2) for t in (q, k, v)] if x.dim() == 3 else \
            [t.reshape(shape).unsqueeze(2) for t in (q, k, v)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(x)  # (B, heads, L, head_dim)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    def init_state(self, batch_size: int, device=None, dtype=None):
        return {"k": None, "v": None}

    def step(self, x: torch.Tensor, state: dict):
        q, k, v = self._split(x)  # (B, heads, 1, head_dim)
        state["k"] = k if state["k"] is None else torch.cat([state["k"], k], dim=2)
        state["v"] = v if state["v"] is None else torch.cat([state["v"], v], dim=2)
        y = F.scaled_dot_product_attention(q, state["k"], state["v"])
        return self.out(y.reshape(x.shape)), state


class PreNormResidual(nn.Module):
    """x + layer(norm(x)) for a layer with forward/init_state/step (S4D, attention)."""

    def __init__(self, dim: int, layer: nn.Module, norm: str = "layer"):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer(self.norm(x))

    def init_state(self, batch_size: int, device=None, dtype=None):
        return self.layer.init_state(batch_size, device=device, dtype=dtype)

    def step(self, x: torch.Tensor, state):
        y, state = self.layer.step(self.norm(x), state)
        return x + y, state


class MLPResidual(nn.Module):
    """x + fc2(gelu(fc1(norm(x)))), SaShiMi's feed-forward block (expansion ``ff``); stateless."""

    def __init__(self, dim: int, ff: int = 2, norm: str = "layer"):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.fc1 = nn.Linear(dim, ff * dim)
        self.fc2 = nn.Linear(ff * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))

    def init_state(self, batch_size: int, device=None, dtype=None):
        return None

    def step(self, x: torch.Tensor, state):
        return self.forward(x), state


class Stage(nn.Module):
    """``n_layers`` blocks of one type at one resolution of the U-Net."""

    def __init__(self, block: str, dim: int, n_layers: int, ff: int = 2, norm: str = "layer",
                 mamba_d_state: int = 16, mamba_d_conv: int = 4, mamba_expand: int = 2, s4d_d_state: int = 64,
                 attn_head_dim: int = 64):
        super().__init__()
        if block not in BLOCK_TYPES:
            raise ValueError(f"block must be one of {BLOCK_TYPES}, got {block!r}")
        layers: list[nn.Module] = []
        for _ in range(n_layers):
            if block == "mamba":
                layers.append(MambaResidual(dim, norm, mamba_d_state, mamba_d_conv, mamba_expand))
                continue
            mixer = S4DLayer(dim, s4d_d_state) if block == "s4d" else CausalSelfAttention(dim, attn_head_dim)
            layers.append(PreNormResidual(dim, mixer, norm))
            if ff > 0:
                layers.append(MLPResidual(dim, ff, norm))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def init_state(self, batch_size: int, device=None, dtype=None) -> list:
        return [layer.init_state(batch_size, device=device, dtype=dtype) for layer in self.layers]

    def step(self, x: torch.Tensor, state: list):
        for i, layer in enumerate(self.layers):
            x, state[i] = layer.step(x, state[i])
        return x, state
