"""The SaShiMi U-Net over mu-law tokens, with Mamba (or S4D / attention) blocks, in parallel and recurrent mode.

Layout (Goel et al. 2022, state-spaces/s4 ``Sashimi``; the Mamba paper's SC09 model swaps its blocks for Mamba):

    tokens -> Embedding(256, D)
    level 0 (D, rate 1)      [down stage] -> skip0 -> DownPool(fold 4 samples, widen x2)
    level 1 (2D, rate 1/4)   [down stage] -> skip1 -> DownPool
    centre  (4D, rate 1/16)  x + centre stage(x)
    level 1                  UpPool(causal shift by one coarse step) + skip1 -> x + up stage(x)
    level 0                  UpPool + skip0 -> x + up stage(x) -> LayerNorm -> Linear(D, 256) logits

``unet=True`` adds the bracketed down stages (SaShiMi's ``unet`` option). Upstream's autoregressive SaShiMi leaves
them out; we keep them on in the Mamba configs because that is what reproduces the Mamba paper's parameter counts
(6.25M / 24.9M for d_model 64 x 8 layers / 96 x 15 layers against the paper's 6.1M / 24.3M; without down stages the
same widths give 5.1M / 20.0M). See configs/audio/README.md.

Causality: DownPool output k sees samples [p k, p k + p); UpPool feeds coarse step k only to fine positions
[p (k + 1), p (k + 2)), so output t depends on inputs <= t. With the input shift of the dataset (input t is sample
t - 1) the logits at t depend on samples < t.

Recurrent mode (:meth:`SaShiMi.step`): one sample at a time with constant memory for the SSM blocks. Level i steps
once every prod(pool[:i]) samples; each DownPool buffers its ``pool`` inputs and each UpPool replays its ``pool``
outputs, so step-by-step logits equal ``forward``. Every tensor of the state is allocated once by ``init_state`` and
updated in place (only the Python counters that say which levels step change between samples), so the step can
be captured in CUDA graphs, one per phase ``t mod prod(pool)`` (see :mod:`audio.graph_generation`). The attention
block is the exception: its key/value cache grows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audio.layers import Stage
from audio.mulaw import NUM_CLASSES


class DownPool(nn.Module):
    """(B, L, D) -> (B, L / pool, D * expand): fold ``pool`` consecutive samples into channels, then a linear map."""

    def __init__(self, dim: int, expand: int, pool: int):
        super().__init__()
        self.pool = pool
        self.dim = dim
        self.linear = nn.Linear(dim * pool, dim * expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return self.linear(x.reshape(batch, length // self.pool, self.pool * dim))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        """A fixed (B, pool, D) buffer written in place (so a CUDA graph can capture the step) and a fill count."""
        return {"buffer": torch.zeros(batch_size, self.pool, self.dim, device=device, dtype=dtype), "count": 0}

    def step(self, x: torch.Tensor, state: dict):
        """Buffer x (B, D); every ``pool``-th call returns the coarse vector (B, D * expand), else None."""
        buffer = state["buffer"]
        buffer[:, state["count"]].copy_(x)
        state["count"] += 1
        if state["count"] < self.pool:
            return None, state
        state["count"] = 0
        return self.linear(buffer.reshape(buffer.shape[0], self.pool * self.dim)), state


class UpPool(nn.Module):
    """(B, L', D) -> (B, L' pool, D / expand): a linear map unfolded into ``pool`` samples, shifted one coarse step."""

    def __init__(self, dim: int, expand: int, pool: int):
        super().__init__()
        self.pool = pool
        self.out_dim = dim // expand
        self.linear = nn.Linear(dim, self.out_dim * pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        y = F.pad(self.linear(x)[:, :-1], (0, 0, 1, 0))  # coarse step k feeds the next group of fine samples
        return y.reshape(batch, length * self.pool, self.out_dim)

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        return {"buffer": torch.zeros(batch_size, self.pool, self.out_dim, device=device, dtype=dtype), "index": 0}

    def step(self, x: torch.Tensor | None, state: dict):
        """Next fine output (B, D / expand); x is the coarse vector, given only on the last sample of each group.

        The buffer is overwritten in place (its storage never changes, as a CUDA graph needs).
        """
        buffer = state["buffer"]
        out = buffer[:, state["index"]]
        state["index"] += 1
        if x is not None:
            if state["index"] != self.pool:
                raise RuntimeError("UpPool received a coarse step before its group was complete")
            out = out.clone()  # the view would see the new group written below
            buffer.copy_(self.linear(x).reshape(x.shape[0], self.pool, self.out_dim))
            state["index"] = 0
        elif state["index"] == self.pool:
            raise RuntimeError("UpPool group complete but no coarse step arrived")
        return out, state


class SaShiMiBackbone(nn.Module):
    """The U-Net on features: (B, L, d_model) -> (B, L, d_model), final LayerNorm included."""

    def __init__(self, d_model: int = 64, n_layers: int = 8, pool: tuple[int, ...] | list[int] = (4, 4),
                 expand: int = 2, block: str = "mamba", center_block: str | None = None, ff: int = 2,
                 unet: bool = True, norm: str = "layer", mamba_d_state: int = 16, mamba_d_conv: int = 4,
                 mamba_expand: int = 2, s4d_d_state: int = 64, attn_head_dim: int = 64):
        super().__init__()
        self.pool = [int(p) for p in pool]
        if any(p < 1 for p in self.pool) or expand < 1 or n_layers < 0:
            raise ValueError("pool factors and expand must be >= 1, n_layers >= 0")
        self.unet = unet
        self.d_model = d_model
        self.total_pool = math.prod(self.pool)

        def stage(kind: str, dim: int) -> Stage:
            return Stage(kind, dim, n_layers, ff=ff, norm=norm, mamba_d_state=mamba_d_state,
                         mamba_d_conv=mamba_d_conv, mamba_expand=mamba_expand, s4d_d_state=s4d_d_state,
                         attn_head_dim=attn_head_dim)

        dims = [d_model * expand**i for i in range(len(self.pool) + 1)]
        self.down_stages = nn.ModuleList([stage(block, dims[i]) for i in range(len(self.pool))] if unet else [])
        self.down_pools = nn.ModuleList([DownPool(dims[i], expand, p) for i, p in enumerate(self.pool)])
        self.center = stage(center_block or block, dims[-1])
        self.up_pools = nn.ModuleList([UpPool(dims[i + 1], expand, p) for i, p in enumerate(self.pool)])
        self.up_stages = nn.ModuleList([stage(block, dims[i]) for i in range(len(self.pool))])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        padded = -(-length // self.total_pool) * self.total_pool
        if padded != length:  # right padding cannot affect earlier outputs (causal)
            x = F.pad(x, (0, 0, 0, padded - length))
        skips = []
        for i, down_pool in enumerate(self.down_pools):
            if self.unet:
                x = self.down_stages[i](x)
            skips.append(x)
            x = down_pool(x)
        x = x + self.center(x)
        for i in reversed(range(len(self.pool))):
            x = self.up_pools[i](x) + skips[i]
            x = x + self.up_stages[i](x)
        return self.norm(x)[:, :length]

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        kw = {"device": device, "dtype": dtype}
        return {
            "t": 0,
            "down_stages": [s.init_state(batch_size, **kw) for s in self.down_stages],
            "down_pools": [p.init_state(batch_size, **kw) for p in self.down_pools],
            "center": self.center.init_state(batch_size, **kw),
            "up_pools": [p.init_state(batch_size, **kw) for p in self.up_pools],
            "up_stages": [s.init_state(batch_size, **kw) for s in self.up_stages],
        }

    def step(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        """One sample: x (B, d_model) -> (B, d_model); ``state`` (from :meth:`init_state`) is advanced in place."""
        skips = []
        reached = 0  # deepest level that steps at this sample (len(pool) = centre)
        for i, down_pool in enumerate(self.down_pools):
            if self.unet:
                x, state["down_stages"][i] = self.down_stages[i].step(x, state["down_stages"][i])
            skips.append(x)
            x, state["down_pools"][i] = down_pool.step(x, state["down_pools"][i])
            if x is None:
                break
            reached = i + 1
        coarse = None
        if reached == len(self.pool):
            y, state["center"] = self.center.step(x, state["center"])
            coarse = x + y
        for i in reversed(range(min(reached + 1, len(self.pool)))):
            x, state["up_pools"][i] = self.up_pools[i].step(coarse, state["up_pools"][i])
            x = x + skips[i]
            y, state["up_stages"][i] = self.up_stages[i].step(x, state["up_stages"][i])
            coarse = x + y
        state["t"] += 1
        return self.norm(coarse)


class SaShiMi(nn.Module):
    """Autoregressive model over 256 mu-law classes: embedding -> :class:`SaShiMiBackbone` -> linear head."""

    def __init__(self, d_model: int = 64, n_layers: int = 8, pool: tuple[int, ...] | list[int] = (4, 4),
                 expand: int = 2, block: str = "mamba", center_block: str | None = None, ff: int = 2,
                 unet: bool = True, norm: str = "layer", mamba_d_state: int = 16, mamba_d_conv: int = 4,
                 mamba_expand: int = 2, s4d_d_state: int = 64, attn_head_dim: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(NUM_CLASSES, d_model)
        self.backbone = SaShiMiBackbone(d_model, n_layers, pool, expand, block, center_block, ff, unet, norm,
                                        mamba_d_state, mamba_d_conv, mamba_expand, s4d_d_state, attn_head_dim)
        self.head = nn.Linear(d_model, NUM_CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) int64 -> logits (B, L, 256)."""
        return self.head(self.backbone(self.embedding(tokens)))

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        device = device or self.head.weight.device
        return self.backbone.init_state(batch_size, device=device, dtype=dtype or self.head.weight.dtype)

    def step(self, tokens: torch.Tensor, state: dict) -> torch.Tensor:
        """tokens (B,) -> logits (B, 256) for the next sample; advances ``state``."""
        return self.head(self.backbone.step(self.embedding(tokens), state))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
