"""Mamba language model: embedding -> stack of pre-norm residual Mamba blocks -> final norm -> tied LM head.

Module and parameter names follow mamba_ssm's ``MixerModel`` / ``MambaLMHeadModel``
(``backbone.embedding``, ``backbone.layers.{i}.mixer.*``, ``backbone.layers.{i}.norm``, ``backbone.norm_f``,
``lm_head``), so mamba_ssm checkpoints load unchanged. Generation uses the recurrent step, so every new token costs
the same time and memory whatever the prompt length.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..modules import BiMamba, Block, GatedMLP, Mamba, RMSNorm
from ..utils.optim import tag_weight_decay
from .config import MambaConfig
from .generation import sample_next_token

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"


def _init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02,
                  n_residuals_per_layer: int = 1) -> None:
    """mamba_ssm's init: zero linear biases (except dt_proj's), normal embeddings, and out_proj/fc2 rescaled by
    1/sqrt(n_residuals_per_layer * n_layer) so the residual stream's variance does not grow with depth."""
    if isinstance(module, nn.Linear):
        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    for name in ("out_proj", "fc2"):
        child = getattr(module, name, None)
        if isinstance(child, nn.Linear):
            nn.init.kaiming_uniform_(child.weight, a=math.sqrt(5))
            with torch.no_grad():
                child.weight /= math.sqrt(n_residuals_per_layer * n_layer)


@dataclass
class InferenceCache:
    """Decoding state of every layer: (conv_state, ssm_state) per layer, and how many tokens were consumed."""

    states: list
    seqlen_offset: int = 0


class MixerModel(nn.Module):
    """Token embedding and the residual stack; forward returns normalised hidden states (batch, L, d_model)."""

    def __init__(self, config: MambaConfig, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.config = config
        self.residual_in_fp32 = config.residual_in_fp32
        self.gradient_checkpointing = config.gradient_checkpointing
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model, **factory)
        norm_cls = partial(RMSNorm if config.rms_norm else nn.LayerNorm, eps=config.norm_epsilon, **factory)
        layers = []
        for i in range(config.n_layer):
            if config.bidirectional:
                mixer = BiMamba(config.d_model, layer_idx=i, **config.ssm_cfg, **factory)
            else:
                mixer = Mamba(config.d_model, layer_idx=i, **config.ssm_cfg, **factory)
            mlp = GatedMLP(config.d_model, config.d_intermediate, **factory) if config.d_intermediate else None
            layers.append(Block(config.d_model, mixer, norm_cls(config.d_model), mlp=mlp,
                                norm2=norm_cls(config.d_model) if mlp is not None else None,
                                residual_in_fp32=config.residual_in_fp32))
        self.layers = nn.ModuleList(layers)
        self.norm_f = norm_cls(config.d_model)

    def _final_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        residual = hidden if residual is None else hidden + residual
        return self.norm_f(residual.to(self.norm_f.weight.dtype))

    def forward(self, input_ids: torch.Tensor, inference_cache: InferenceCache | None = None) -> torch.Tensor:
        """A cache that has already read tokens (``seqlen_offset`` > 0) is continued, not restarted."""
        hidden = self.embedding(input_ids)
        residual = None
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        cont = inference_cache is not None and inference_cache.seqlen_offset > 0
        if use_ckpt and cont:  # the recomputation would start from the already overwritten cache
            raise ValueError("gradient checkpointing cannot continue an inference cache; turn one of them off")
        for i, layer in enumerate(self.layers):
            layer_cache = None if inference_cache is None else inference_cache.states[i]
            if use_ckpt:
                hidden, residual = checkpoint(layer, hidden, residual, layer_cache, cont, use_reentrant=False)
            else:
                hidden, residual = layer(hidden, residual, inference_cache=layer_cache, continue_cache=cont)
        return self._final_norm(hidden, residual)

    def step(self, input_ids: torch.Tensor, inference_cache: InferenceCache) -> torch.Tensor:
        """input_ids (batch,) -> final hidden state (batch, d_model) of that token."""
        hidden = self.embedding(input_ids[:, None])
        residual = None
        for layer, cache in zip(self.layers, inference_cache.states, strict=True):
            hidden, residual = layer.step(hidden, residual, cache)
        return self._final_norm(hidden, residual)[:, 0]


class MambaLMHeadModel(nn.Module):
    """Causal Mamba language model: logits (batch, L, padded_vocab_size) = lm_head(backbone(input_ids))."""

    def __init__(self, config: MambaConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.backbone = MixerModel(config, device=device, dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False, device=device, dtype=dtype)
        self.apply(partial(_init_weights, n_layer=config.n_layer, initializer_range=config.initializer_range,
                           n_residuals_per_layer=2 if config.d_intermediate else 1))
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight
        tag_weight_decay(self)  # while shapes are real: FSDP later flattens parameters into 1-D shards

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations (long sequences)."""
        self.config.gradient_checkpointing = enabled
        self.backbone.gradient_checkpointing = enabled

    def forward(self, input_ids: torch.Tensor, inference_cache: InferenceCache | None = None,
                num_last_tokens: int = 0) -> torch.Tensor:
        """input_ids (batch, L) long -> logits (batch, L, padded_vocab) (only the last ``num_last_tokens`` if > 0).

        With an ``inference_cache`` the states after the last token are left in it; if the cache has already read
        tokens, these input_ids continue that sequence (feeding a long sequence in pieces gives the logits of one
        forward over all of it, in memory bounded by the piece)."""
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input_ids must be a (batch, L) integer tensor, got {input_ids.dtype} "
                             f"{tuple(input_ids.shape)}")
        hidden = self.backbone(input_ids, inference_cache=inference_cache)
        if inference_cache is not None:
            inference_cache.seqlen_offset += input_ids.shape[1]
        if num_last_tokens > 0:
            hidden = hidden[:, -num_last_tokens:]
        return self.lm_head(hidden)

    def allocate_inference_cache(self, batch_size: int, dtype=None) -> InferenceCache:
        if self.config.bidirectional:
            raise ValueError("a bidirectional model is not causal and cannot decode token by token")
        return InferenceCache([layer.mixer.allocate_inference_cache(batch_size, dtype=dtype)
                               for layer in self.backbone.layers])

    def step(self, input_ids: torch.Tensor, inference_cache: InferenceCache) -> torch.Tensor:
        """Feed one token per sequence, input_ids (batch,); return next-token logits (batch, padded_vocab)."""
        logits = self.lm_head(self.backbone.step(input_ids, inference_cache))
        inference_cache.seqlen_offset += 1
        return logits

    @torch.inference_mode()
    def generate(self, prompt_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 0.0, generator: torch.Generator | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Continue prompt_ids (batch, L0) by max_new_tokens sampled tokens; returns (batch, L0 + max_new_tokens).

        The prompt is read once by the parallel forward (prefilling the recurrent state), then each new token is
        one recurrent step of constant cost. Only ids below ``config.vocab_size`` (not the padding) are sampled.
        """
        if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
            raise ValueError(f"prompt_ids must be (batch, L0) with L0 >= 1, got {tuple(prompt_ids.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        was_training = self.training
        self.eval()
        cache = self.allocate_inference_cache(prompt_ids.shape[0])
        logits = self.forward(prompt_ids, inference_cache=cache, num_last_tokens=1)[:, -1]
        tokens = [prompt_ids]
        steps = range(max_new_tokens)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="generate", unit="tok")
        for i in steps:
            next_ids = sample_next_token(logits[:, : self.config.vocab_size], temperature, top_k, top_p, generator)
            tokens.append(next_ids[:, None])
            if i + 1 < max_new_tokens:
                logits = self.step(next_ids, cache)
        self.train(was_training)
        return torch.cat(tokens, dim=1)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json and model.safetensors (the tied LM head is stored once, as the embedding)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            state.pop("lm_head.weight")
        save_file(state, str(folder / WEIGHTS_NAME))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device=None, dtype=None) -> MambaLMHeadModel:
        """Load a folder written by :meth:`save_pretrained` or by mamba_ssm (config.json + pytorch_model.bin)."""
        folder = Path(folder)
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no config.json in {folder}")
        try:
            config = MambaConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(f"{config_path}: not a valid Mamba config: {err}") from err
        if (folder / WEIGHTS_NAME).is_file():
            from safetensors.torch import load_file

            state = load_file(str(folder / WEIGHTS_NAME))
        elif (folder / TORCH_WEIGHTS_NAME).is_file():
            state = torch.load(folder / TORCH_WEIGHTS_NAME, map_location="cpu", weights_only=True)
        else:
            raise FileNotFoundError(f"{folder}: neither {WEIGHTS_NAME} nor {TORCH_WEIGHTS_NAME} found")
        model = cls(config, device=device, dtype=dtype)
        if config.tie_embeddings:
            state.pop("lm_head.weight", None)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (config.tie_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not match the config (missing {missing}, unexpected {unexpected})")
        return model
