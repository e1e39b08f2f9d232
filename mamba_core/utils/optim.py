"""Optimiser helpers: parameter groups that keep weight decay off what Mamba training leaves undecayed, and the
warmup + cosine learning-rate schedule.

mamba_ssm marks A_log and D with ``_no_weight_decay``; biases, norm weights and embeddings are conventionally not
decayed either (GPT-style recipes the Mamba paper follows). The decision looks at parameter shapes, which FSDP
flattens into 1-D shards, so :func:`tag_weight_decay` records it on each parameter while shapes are still real
(``MambaLMHeadModel`` does so when it is built) and :func:`parameter_groups` trusts such tags.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm)


def _exempt(module: nn.Module, name: str, p: nn.Parameter) -> bool:
    return name == "bias" or p.dim() < 2 or isinstance(module, _NO_DECAY_MODULES)


def tag_weight_decay(model: nn.Module) -> None:
    """Set ``_no_weight_decay`` on every parameter not tagged yet, by the rule above (call before FSDP wraps)."""
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not hasattr(p, "_no_weight_decay"):
                p._no_weight_decay = _exempt(module, name, p)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed matrices, and undecayed biases/norms/embeddings/A_log/D. Shared tensors once."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            tag = getattr(p, "_no_weight_decay", None)
            skip = _exempt(module, name, p) if tag is None else tag
            (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine_factor(step: int, warmup_steps: int, progress: float, min_lr_ratio: float) -> float:
    """LR multiplier: linear warmup over the first ``warmup_steps`` steps, then a cosine from 1 down to
    ``min_lr_ratio`` as ``progress`` goes from 0 to 1 (clamped to [0, 1]); the caller says what progress is
    (steps after the warmup, or elapsed wall-clock time)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LR schedule of the Mamba recipes: linear warmup to the peak over ``warmup_steps``, then cosine decay
    to ``min_lr_ratio`` x peak at ``total_steps`` (held there after)."""
    total_steps = max(total_steps, warmup_steps + 1)

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup_steps, (step - warmup_steps) / (total_steps - warmup_steps),
                                    min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
