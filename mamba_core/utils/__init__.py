"""Helpers around the models that belong to no layer in particular."""

from .optim import parameter_groups, tag_weight_decay, warmup_cosine, warmup_cosine_factor

__all__ = ["parameter_groups", "tag_weight_decay", "warmup_cosine", "warmup_cosine_factor"]
