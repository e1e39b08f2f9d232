"""Optimiser parameter groups that keep weight decay off what Mamba training leaves undecayed.

mamba_ssm marks A_log and D with ``_no_weight_decay``; biases, norm weights and embeddings are conventionally not
decayed either (GPT-style recipes the Mamba paper follows).
"""

from __future__ import annotations

from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed matrices, and undecayed biases/norms/embeddings/A_log/D. Shared tensors once."""
    decay, no_decay, seen = [], [], set()
    no_decay_modules = (nn.Embedding, nn.LayerNorm)
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            skip = (getattr(p, "_no_weight_decay", False) or name == "bias" or p.dim() < 2
                    or isinstance(module, no_decay_modules))
            (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
