"""Configuration of a Mamba language model, with the field names of mamba_ssm's ``MambaConfig``.

A ``config.json`` written by mamba_ssm (or by the Hugging Face ``state-spaces/mamba-*`` checkpoints) loads with
:meth:`MambaConfig.from_dict`; fields we do not model (attention layers) must be empty, and ``fused_add_norm`` is
accepted and ignored because it only selects a kernel, not different numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class MambaConfig:
    d_model: int = 2560
    n_layer: int = 64
    vocab_size: int = 50277
    d_intermediate: int = 0
    ssm_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True
    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True
    bidirectional: bool = False
    gradient_checkpointing: bool = False
    initializer_range: float = 0.02
    attn_layer_idx: list = field(default_factory=list)
    attn_cfg: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MambaConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_intermediate < 0:
            raise ValueError(f"MambaConfig.d_intermediate must be >= 0, got {self.d_intermediate}")
        if self.attn_layer_idx:
            raise ValueError("attention layers (attn_layer_idx) are not supported by mamba_core")
        layer = self.ssm_cfg.get("layer", "Mamba1")
        if layer != "Mamba1":
            raise ValueError(f"ssm_cfg.layer={layer!r} is not supported; mamba_core implements Mamba1")

    @property
    def padded_vocab_size(self) -> int:
        """vocab_size rounded up to a multiple of pad_vocab_size_multiple (the embedding and LM head size)."""
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MambaConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown MambaConfig fields: {unknown}")
        return cls(**data)
