"""8-bit mu-law quantisation of waveforms, following the SaShiMi (state-spaces/s4) convention.

Why this exact convention: SC09/YouTubeMix likelihoods (NLL in nats or bits per sample) are only comparable with
SaShiMi and Mamba numbers if the 256 classes are the same. The SaShiMi recipe is:

1. per-clip min-max scaling to [-1, 1]: ``-1 + 2 (x - min) / (max - min + 1e-6)``;
2. mu-law companding with mu = 255: ``c = sign(x) log1p(mu |x|) / log1p(mu)`` (c in [-1, 1]);
3. linear quantisation of ``u = (c + 1) / 2`` in [0, 1] to 256 levels: ``floor(u (256 - 0.01) + 0.005)``.

Token 128 (``ZERO_TOKEN``) is the level of silence; it is also the first input token and the input padding value.

Decoding: ``mu_law_expand`` is the exact inverse of ``mu_law_compress``. ``decode`` maps a token to the centre of its
quantisation bin in the companded domain and expands it, so ``decode(encode(x))`` is within half a quantisation step
(in the companded domain) of the min-max-scaled input. Upstream decodes to the bin's lower edge (``q / 128 - 1``),
which is biased by half a step; that variant is ``decode(tokens, reconstruction="edge")``.

Deviation: a constant clip (max == min) has no range to scale; upstream maps it to -1 (token 0), here it maps to
silence (token 128).
"""

from __future__ import annotations

import math

import torch

BITS = 8
NUM_CLASSES = 1 << BITS  # 256
MU = NUM_CLASSES - 1  # 255
ZERO_TOKEN = NUM_CLASSES // 2  # 128
_QUANT_EPS = 0.01  # SaShiMi's quantisation epsilon: keeps u = 1 inside the top level
_SCALE_EPS = 1e-6  # SaShiMi's min-max denominator epsilon
# Width of one quantisation step in the companded domain c in [-1, 1].
MU_LAW_STEP = 2.0 / (NUM_CLASSES - _QUANT_EPS)


def minmax_scale(waveform: torch.Tensor) -> torch.Tensor:
    """Scale each clip (last dimension) to [-1, 1] as SaShiMi does; constant clips become silence."""
    waveform = waveform.to(torch.float32)
    low = waveform.amin(dim=-1, keepdim=True)
    high = waveform.amax(dim=-1, keepdim=True)
    span = high - low
    scaled = -1.0 + 2.0 * (waveform - low) / (span + _SCALE_EPS)
    return torch.where(span > 0, scaled, torch.zeros_like(scaled))


def mu_law_compress(x: torch.Tensor) -> torch.Tensor:
    """Mu-law companding of x in [-1, 1] to c in [-1, 1]."""
    return torch.sign(x) * torch.log1p(MU * x.abs()) / math.log1p(MU)


def mu_law_expand(c: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`mu_law_compress`."""
    return torch.sign(c) * torch.expm1(c.abs() * math.log1p(MU)) / MU


def quantize_companded(c: torch.Tensor) -> torch.Tensor:
    """Companded c in [-1, 1] to integer levels 0..255 (int64), with SaShiMi's epsilon offsets."""
    u = (c + 1.0) / 2.0
    levels = torch.floor(u * (NUM_CLASSES - _QUANT_EPS) + _QUANT_EPS / 2)
    return levels.clamp_(0, NUM_CLASSES - 1).to(torch.long)


def dequantize_companded(tokens: torch.Tensor, reconstruction: str = "centre") -> torch.Tensor:
    """Integer levels to companded values in [-1, 1]: bin centre ("centre") or upstream's lower edge ("edge")."""
    tokens = tokens.to(torch.float32)
    if reconstruction == "centre":
        u = (tokens + 0.5 - _QUANT_EPS / 2) / (NUM_CLASSES - _QUANT_EPS)
        return 2.0 * u - 1.0
    if reconstruction == "edge":
        return tokens / (NUM_CLASSES / 2) - 1.0
    raise ValueError(f"reconstruction must be 'centre' or 'edge', got {reconstruction!r}")


def encode(waveform: torch.Tensor) -> torch.Tensor:
    """Waveform (..., num_samples) -> mu-law tokens (..., num_samples) int64 in [0, 255], per-clip min-max scaled."""
    if waveform.shape[-1] == 0:
        raise ValueError("cannot mu-law encode an empty waveform")
    if not torch.isfinite(waveform).all():
        raise ValueError("waveform contains NaN or infinite samples")
    return quantize_companded(mu_law_compress(minmax_scale(waveform)))


def decode(tokens: torch.Tensor, reconstruction: str = "centre") -> torch.Tensor:
    """Mu-law tokens (...) -> waveform in [-1, 1] (float32)."""
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= NUM_CLASSES):
        raise ValueError(f"mu-law tokens must lie in [0, {NUM_CLASSES - 1}]")
    return mu_law_expand(dequantize_companded(tokens, reconstruction))
