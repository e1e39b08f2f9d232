"""Helpers around the models that belong to no layer in particular."""

from .optim import parameter_groups, tag_weight_decay, warmup_cosine

__all__ = ["parameter_groups", "tag_weight_decay", "warmup_cosine"]
