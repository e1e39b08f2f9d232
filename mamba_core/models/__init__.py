"""Mamba language model, its configuration and sampling utilities."""

from .config import MambaConfig
from .generation import filter_logits, sample_next_token
from .mixer_seq_simple import InferenceCache, MambaLMHeadModel, MixerModel

__all__ = ["InferenceCache", "MambaConfig", "MambaLMHeadModel", "MixerModel", "filter_logits", "sample_next_token"]
