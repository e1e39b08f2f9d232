"""audio.dsp: resampling against scipy.signal.resample_poly, mel scale formulas, filterbank shape, tone placement."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from audio.dsp import hz_to_mel, log_mel, mel_filterbank, mel_spectrogram, mel_to_hz, resample


def _bandlimited(sr, lower_nyquist, seconds=0.25, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = np.zeros_like(t)
    for frac in (0.05, 0.3, 0.55, 0.8):
        x += 0.2 * np.sin(2 * np.pi * frac * lower_nyquist * t + rng.uniform(0, 2 * np.pi))
    return x


@pytest.mark.parametrize("orig,new", [(8000, 16000), (16000, 8000), (44100, 16000), (22050, 16000), (16000, 16000)])
def test_resample_matches_scipy_resample_poly(orig, new):
    x = _bandlimited(orig, min(orig, new) / 2)
    g = math.gcd(orig, new)
    ref = scipy.signal.resample_poly(x, new // g, orig // g)
    y = resample(torch.from_numpy(x.astype(np.float32)), orig, new).numpy()
    assert y.shape == ref.shape
    edge = 2 * new // 100  # filter start-up: both pad with zeros but filter lengths differ
    assert np.abs(y - ref)[edge:-edge].max() < 5e-3
    assert np.abs(y - ref).max() < 5e-2


def test_resample_removes_content_above_new_nyquist_and_keeps_batch_shape():
    sr = 16000
    t = torch.arange(sr // 4) / sr
    x = torch.stack([torch.sin(2 * math.pi * 6000 * t), torch.sin(2 * math.pi * 1000 * t)])  # 6 kHz > 4 kHz Nyquist
    y = resample(x, sr, 8000)
    assert y.shape == (2, 2000)
    assert y[0, 200:-200].abs().max() < 1e-2  # aliased tone suppressed
    assert y[1, 200:-200].abs().max() == pytest.approx(1.0, abs=1e-2)


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError, match="orig_sr"):
        resample(torch.zeros(10), 0, 16000)
    with pytest.raises(ValueError, match="new_sr"):
        resample(torch.zeros(10), 8000, 16000.5)


def test_mel_scale_formulas_known_values():
    assert float(hz_to_mel(700.0, "htk")) == pytest.approx(2595 * math.log10(2))
    assert float(hz_to_mel(1000.0, "slaney")) == pytest.approx(15.0)
    assert float(hz_to_mel(500.0, "slaney")) == pytest.approx(7.5)
    assert float(hz_to_mel(6400.0, "slaney")) == pytest.approx(15.0 + 27.0)
    for scale in ("htk", "slaney"):
        f = torch.tensor([0.0, 120.0, 999.0, 1000.0, 3000.0, 8000.0], dtype=torch.float64)
        assert torch.allclose(mel_to_hz(hz_to_mel(f, scale), scale), f, atol=1e-6)


def test_single_filter_is_the_closed_form_triangle():
    sr, n_fft = 16000, 512
    fb = mel_filterbank(n_fft // 2 + 1, sr, n_mels=1, scale="htk")
    # one filter: edges at 0, the mel midpoint of [0, 8000], and 8000 Hz; the mel midpoint in Hz is closed form
    center = 700 * (math.sqrt(1 + 8000 / 700) - 1)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    expected = np.where(freqs <= center, freqs / center, (8000 - freqs) / (8000 - center))
    assert np.allclose(fb[:, 0].numpy(), expected, atol=1e-6)
    slaney = mel_filterbank(n_fft // 2 + 1, sr, n_mels=1, scale="htk", norm="slaney")
    assert np.allclose(slaney[:, 0].numpy(), expected * 2 / 8000, atol=1e-9)


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_pure_tone_peaks_in_the_mel_bin_centred_on_it(scale):
    sr, n_fft, n_mels = 16000, 1024, 40
    edges = mel_to_hz(torch.linspace(0, float(hz_to_mel(sr / 2, scale)), n_mels + 2, dtype=torch.float64), scale)
    for m in (5, 17, 33):
        t = torch.arange(sr // 2, dtype=torch.float32) / sr
        tone = 0.5 * torch.sin(2 * math.pi * float(edges[m + 1]) * t)
        mel = mel_spectrogram(tone, sr, n_fft=n_fft, hop_length=256, n_mels=n_mels, scale=scale)
        assert mel.shape == (n_mels, 1 + (sr // 2) // 256)
        assert int(mel.mean(-1).argmax()) == m


def test_log_mel_floors_silence_and_batches():
    x = torch.zeros(3, 4000)
    out = log_mel(x, 16000, eps=1e-5, n_fft=256, hop_length=128, n_mels=16)
    assert out.shape == (3, 16, 1 + 4000 // 128)
    assert torch.allclose(out, torch.full_like(out, math.log(1e-5)))
