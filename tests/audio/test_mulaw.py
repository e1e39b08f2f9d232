"""Mu-law quantisation: SaShiMi constants, exact inverse, and the half-step round-trip bound."""

import math

import numpy as np
import pytest
import torch

from audio import mulaw


def _sashimi_reference_encode(x: np.ndarray) -> np.ndarray:
    """Independent numpy transcription of the SaShiMi recipe (min-max, mu=255, 256 levels, eps 0.01)."""
    x = x.astype(np.float64)
    scaled = -1 + 2 * (x - x.min()) / (x.max() - x.min() + 1e-6)
    companded = np.sign(scaled) * np.log1p(255 * np.abs(scaled)) / np.log1p(255)
    return np.floor((companded + 1) / 2 * (256 - 0.01) + 0.005).astype(np.int64)


def test_constants():
    assert (mulaw.NUM_CLASSES, mulaw.MU, mulaw.ZERO_TOKEN) == (256, 255, 128)


def test_extremes_and_zero_token():
    tokens = mulaw.encode(torch.tensor([-0.3, 0.7]))
    assert tokens.tolist() == [0, 255]
    # Upstream ("edge") decoding maps the zero token exactly to silence.
    assert mulaw.decode(torch.tensor([mulaw.ZERO_TOKEN]), reconstruction="edge").item() == 0.0
    assert abs(mulaw.decode(torch.tensor([mulaw.ZERO_TOKEN])).item()) < 1e-4


def test_matches_reference_transcription():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000) * np.exp(rng.uniform(-6, 0, 4000))
    ours = mulaw.encode(torch.from_numpy(x).float()).numpy()
    ref = _sashimi_reference_encode(x.astype(np.float32))
    # float32 vs float64 may flip a level exactly at a bin boundary; allow a handful.
    assert np.mean(ours == ref) > 0.999
    assert np.abs(ours - ref).max() <= 1


def test_compress_expand_exact_inverse():
    x = torch.linspace(-1, 1, 10001, dtype=torch.float64)
    assert torch.allclose(mulaw.mu_law_expand(mulaw.mu_law_compress(x)), x, atol=1e-12)


def test_round_trip_within_half_step():
    gen = torch.Generator().manual_seed(1)
    waveform = torch.randn(3, 8000, generator=gen) * torch.logspace(-3, 0, 8000)
    scaled = mulaw.minmax_scale(waveform)
    tokens = mulaw.encode(waveform)
    assert tokens.dtype == torch.long and tokens.min() >= 0 and tokens.max() <= 255
    err = (mulaw.mu_law_compress(mulaw.decode(tokens)) - mulaw.mu_law_compress(scaled)).abs()
    assert err.max().item() <= mulaw.MU_LAW_STEP / 2 + 1e-6
    # Upstream's lower-edge reconstruction breaks this bound: the bound is a real check.
    edge_err = (mulaw.mu_law_compress(mulaw.decode(tokens, "edge")) - mulaw.mu_law_compress(scaled)).abs()
    assert edge_err.max().item() > mulaw.MU_LAW_STEP / 2 + 1e-3
    # In the waveform domain the error is below one local bin width.
    upper = mulaw.mu_law_expand(mulaw.dequantize_companded(tokens + 1, "edge").clamp(max=1))
    lower = mulaw.mu_law_expand(mulaw.dequantize_companded(tokens, "edge"))
    assert ((mulaw.decode(tokens) - scaled).abs() <= (upper - lower).abs() + 1e-6).all()


def test_constant_clip_is_silence():
    assert mulaw.encode(torch.full((5,), 0.25)).tolist() == [128] * 5


@pytest.mark.parametrize("bad", [torch.zeros(0), torch.tensor([0.0, math.nan])])
def test_bad_waveform_rejected(bad):
    with pytest.raises(ValueError):
        mulaw.encode(bad)


def test_decode_rejects_out_of_range_tokens():
    with pytest.raises(ValueError, match="0, 255"):
        mulaw.decode(torch.tensor([0, 256]))
