"""The three models compared on the synthetic tasks, all mapping input_ids (batch, L) to logits (batch, L, >=vocab).

* ``mamba`` (S6): mamba_core's MambaLMHeadModel, unchanged. delta, B and C are functions of the input.
* ``s4``: the same network with selection removed from every mixer (:class:`NonSelectiveMamba`): delta is one
  learned value per channel, B and C are learned (d_inner, d_state) parameters, so the SSM is linear
  time-invariant; projections, conv, gate, A, D and the scan itself are those of Mamba. This is the paper's
  "S4 without selection" ablation (same architecture, LTI SSM layer).
* ``transformer``: a pre-norm causal Transformer (torch nn.TransformerEncoder with a causal mask) with fixed
  sinusoidal absolute positional encodings added to the embeddings (the paper's "MHA-Abs"). Sinusoids are defined
  at every position, so the model runs at any length; it just has never seen positions past its training length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mamba_core.modules import Mamba
from mamba_core.ops import causal_conv1d_fn, causal_conv1d_update, conv_state_from_sequence, selective_scan_fn

ARCHITECTURES = ("mamba", "s4", "transformer")


class NonSelectiveMamba(Mamba):
    """Mamba mixer whose SSM is time-invariant: fixed per-channel delta, fixed (d_inner, d_state) B and C.

    Built from a selective :class:`Mamba` (``from_selective``) so that every weight the two share starts equal;
    ``x_proj`` and ``dt_proj`` (the selection) are dropped. delta = softplus(dt_bias), initialised to the Mamba
    mixer's dt; B starts at ones and C at N(0, 1/d_state), the S4D-style initialisation for a real diagonal A.
    """

    def __init__(self, d_model: int, **mamba_kwargs):
        super().__init__(d_model, **mamba_kwargs)
        self._drop_selection()

    def _drop_selection(self) -> None:
        factory = {"device": self.A_log.device}
        dt_bias = self.dt_proj.bias.detach().float().clone()
        del self.x_proj, self.dt_proj
        self.dt_bias = nn.Parameter(dt_bias)
        self.B = nn.Parameter(torch.ones(self.d_inner, self.d_state, **factory))
        self.C = nn.Parameter(torch.randn(self.d_inner, self.d_state, **factory) * self.d_state**-0.5)

    @classmethod
    def from_selective(cls, mixer: Mamba) -> NonSelectiveMamba:
        """A non-selective copy of ``mixer``: every shared weight (and the initial dt) copied, selection removed."""
        ablated = cls(
            mixer.d_model, d_state=mixer.d_state, d_conv=mixer.d_conv, expand=mixer.expand, dt_rank=mixer.dt_rank,
            conv_bias=mixer.conv1d.bias is not None, bias=mixer.in_proj.bias is not None,
            use_fast_path=mixer.use_fast_path, layer_idx=mixer.layer_idx,
            device=mixer.A_log.device, dtype=mixer.in_proj.weight.dtype,
        )
        own = ablated.state_dict()
        shared = {k: v for k, v in mixer.state_dict().items() if k in own}
        ablated.load_state_dict(shared, strict=False)
        with torch.no_grad():
            ablated.dt_bias.copy_(mixer.dt_proj.bias.float())
        return ablated

    def _scan_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return -torch.exp(self.A_log.float()), self.B.float(), self.C.float()

    def forward(self, hidden_states: torch.Tensor, inference_cache: tuple | None = None) -> torch.Tensor:
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.d_model:
            raise ValueError(f"hidden_states must be (batch, L, {self.d_model}), got {tuple(hidden_states.shape)}")
        x, z = self.in_proj(hidden_states).transpose(1, 2).chunk(2, dim=1)
        if inference_cache is not None:
            inference_cache[0].copy_(conv_state_from_sequence(x, self.d_conv))
        x = causal_conv1d_fn(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        A, B, C = self._scan_inputs(x)
        delta = torch.zeros_like(x)  # delta' = softplus(0 + dt_bias): the same step at every position
        result = selective_scan_fn(
            x, delta, A, B, C, self.D.float(), z=z, delta_bias=self.dt_bias.float(), delta_softplus=True,
            return_last_state=inference_cache is not None, backend=self.backend,
        )
        if inference_cache is not None:
            y, last_state = result
            inference_cache[1].copy_(last_state)
        else:
            y = result
        return self.out_proj(y.transpose(1, 2))

    def step(self, hidden_states: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor):
        if hidden_states.dim() != 3 or hidden_states.shape[1] != 1:
            raise ValueError(f"step takes one token (batch, 1, d_model), got {tuple(hidden_states.shape)}")
        x, z = self.in_proj(hidden_states[:, 0]).chunk(2, dim=-1)
        x = causal_conv1d_update(x, conv_state, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu")
        A, B, C = self._scan_inputs(x)
        dt = F.softplus(self.dt_bias.float())[:, None]                       # (d_inner, 1)
        xf = x.float()
        ssm_state.mul_(torch.exp(dt * A)).add_(dt * B * xf[..., None])
        y = (ssm_state * C).sum(-1) + self.D.float() * xf
        y = (y * F.silu(z.float())).to(x.dtype)
        return self.out_proj(y).unsqueeze(1), conv_state, ssm_state


def build_mamba_lm(
    vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
    selective: bool = True,
) -> nn.Module:
    """A MambaLMHeadModel; with ``selective=False`` every mixer is replaced by its :class:`NonSelectiveMamba`."""
    from mamba_core.models import MambaConfig, MambaLMHeadModel

    config = MambaConfig(
        d_model=d_model, n_layer=n_layer, vocab_size=vocab_size,
        ssm_cfg={"d_state": d_state, "d_conv": d_conv, "expand": expand},
    )
    model = MambaLMHeadModel(config)
    if not selective:
        for layer in model.backbone.layers:
            layer.mixer = NonSelectiveMamba.from_selective(layer.mixer)
    return model


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(length, dim) fixed sinusoidal encodings of Vaswani et al. (sin on even, cos on odd features)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table.to(dtype)


class CausalTransformerLM(nn.Module):
    """Embedding + sinusoidal positions -> pre-norm nn.TransformerEncoder (causal mask) -> LayerNorm -> head."""

    def __init__(self, vocab_size: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4,
                 dim_feedforward: int | None = None, dropout: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_head, dim_feedforward or 4 * d_model, dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.norm_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        hidden = self.embedding(input_ids) * math.sqrt(self.d_model)
        hidden = hidden + sinusoidal_positions(length, self.d_model, hidden.device, hidden.dtype)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device)
        hidden = self.encoder(hidden, mask=mask, is_causal=True)
        return self.lm_head(self.norm_f(hidden))


def build_model(
    arch: str, vocab_size: int, d_model: int = 64, n_layer: int = 2, d_state: int = 16, d_conv: int = 4,
    expand: int = 2, n_head: int = 4,
) -> nn.Module:
    """One of :data:`ARCHITECTURES`; the Mamba variants ignore ``n_head``, the Transformer the SSM sizes."""
    if arch == "mamba":
        return build_mamba_lm(vocab_size, d_model, n_layer, d_state, d_conv, expand, selective=True)
    if arch == "s4":
        return build_mamba_lm(vocab_size, d_model, n_layer, d_state, d_conv, expand, selective=False)
    if arch == "transformer":
        return CausalTransformerLM(vocab_size, d_model, n_layer, n_head)
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")
