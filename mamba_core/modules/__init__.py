"""Building blocks: the Mamba mixer, its bidirectional wrapper, RMSNorm and the pre-norm residual block."""

from .bidirectional import BiMamba
from .block import Block, GatedMLP
from .mamba_simple import Mamba
from .rms_norm import RMSNorm

__all__ = ["BiMamba", "Block", "GatedMLP", "Mamba", "RMSNorm"]
