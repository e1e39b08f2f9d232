"""mamba_core: a plain torch.nn Mamba library with a pure-Triton selective scan.

ops      selective scan (Triton on CUDA, PyTorch reference elsewhere), causal conv1d, decode step
modules  Mamba block, BiMamba, RMSNorm, residual Block
models   MambaConfig, MambaLMHeadModel (generation, save/load)
utils    optimiser parameter groups
"""

from .models import MambaConfig, MambaLMHeadModel
from .modules import BiMamba, Mamba, RMSNorm

__all__ = ["BiMamba", "Mamba", "MambaConfig", "MambaLMHeadModel", "RMSNorm"]
__version__ = "0.1.0"
