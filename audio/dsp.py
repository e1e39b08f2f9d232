"""Plain-torch signal processing for the audio app: band-limited resampling and mel spectrograms.

torchaudio has no wheel for every torch build we run on, so the two pieces of it that the audio pipeline needs live
here, written against torch only:

* :func:`resample` -- windowed-sinc polyphase resampling between any two integer rates (Kaiser window). It agrees
  with ``scipy.signal.resample_poly`` on band-limited signals to within a few 1e-3 (the filters differ slightly in
  their transition band, so content right at the lower Nyquist frequency is treated a little differently).
* :func:`mel_filterbank`, :func:`mel_spectrogram`, :func:`log_mel` -- triangular mel filterbank on the HTK
  (``2595 * log10(1 + f / 700)``) or Slaney (linear below 1 kHz, logarithmic above) mel scale, applied to a
  Hann-windowed power STFT.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "resample",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "mel_spectrogram",
    "log_mel",
]


def _check_rate(name: str, rate) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) and not (isinstance(rate, float) and rate.is_integer()):
        raise ValueError(f"{name} must be a positive integer sample rate, got {rate!r}")
    rate = int(rate)
    if rate <= 0:
        raise ValueError(f"{name} must be a positive integer sample rate, got {rate}")
    return rate


def _sinc_resample_kernel(
    orig: int, new: int, lowpass_zero_crossings: int, rolloff: float, beta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, int]:
    """Polyphase kernels (new, 1, 2 * width + orig) for reduced rates ``orig -> new`` and the half-width in samples.

    Output phase ``i`` (output sample ``n * new + i``) sits at input position ``(n * new + i) * orig / new``; its
    kernel holds the Kaiser-windowed sinc low-pass (cut-off ``rolloff * min(orig, new) / 2`` in input-rate units)
    evaluated at the input samples around that position, so one strided conv1d computes every phase at once.
    """
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_zero_crossings * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig
    phase = -torch.arange(new, dtype=torch.float64)[:, None] / new
    t = (phase + idx) * base
    t = t.clamp(-lowpass_zero_crossings, lowpass_zero_crossings)
    window = torch.special.i0(beta * torch.sqrt(1 - (t / lowpass_zero_crossings) ** 2)) / torch.special.i0(
        torch.tensor(beta, dtype=torch.float64)
    )
    kernel = torch.special.sinc(t) * window * (base / orig)
    return kernel.to(dtype)[:, None, :], width


def resample(
    waveform: torch.Tensor,
    orig_sr: int,
    new_sr: int,
    lowpass_zero_crossings: int = 24,
    rolloff: float = 0.945,
    beta: float = 8.6,
) -> torch.Tensor:
    """Resample ``waveform`` (..., time) from ``orig_sr`` to ``new_sr`` Hz with a Kaiser-windowed sinc filter.

    The output has ``ceil(time * new_sr / orig_sr)`` samples, aligned so output sample ``k`` is at time
    ``k / new_sr`` (the same convention as ``scipy.signal.resample_poly``). ``rolloff`` places the low-pass cut-off
    as a fraction of the lower of the two Nyquist frequencies; ``lowpass_zero_crossings`` sets the filter length
    (longer = sharper transition, slower); ``beta`` is the Kaiser window shape.
    """
    orig_sr = _check_rate("orig_sr", orig_sr)
    new_sr = _check_rate("new_sr", new_sr)
    if not torch.is_tensor(waveform):
        waveform = torch.as_tensor(waveform)
    if not waveform.is_floating_point():
        raise ValueError(f"resample needs a floating-point waveform, got dtype {waveform.dtype}")
    if orig_sr == new_sr:
        return waveform.clone()
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    shape = waveform.shape
    length = shape[-1]
    out_len = math.ceil(new * length / orig)
    if length == 0:
        return waveform.new_zeros(*shape[:-1], 0)
    kernel, width = _sinc_resample_kernel(orig, new, lowpass_zero_crossings, rolloff, beta, waveform.dtype)
    x = waveform.reshape(-1, 1, length)
    x = torch.nn.functional.pad(x, (width, width + orig))
    y = torch.nn.functional.conv1d(x, kernel.to(x.device), stride=orig)  # (batch, new, frames)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, :out_len]
    return y.reshape(*shape[:-1], out_len)


def hz_to_mel(freq: torch.Tensor | float, scale: str = "htk") -> torch.Tensor:
    """Frequency in Hz -> mel. ``htk``: 2595 log10(1 + f/700). ``slaney``: f / (200/3) below 1 kHz, then
    15 + 27 ln(f / 1000) / ln(6.4) (the Auditory Toolbox / librosa default)."""
    f = torch.as_tensor(freq, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    if scale == "slaney":
        f_sp = 200.0 / 3
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        return torch.where(
            f >= min_log_hz, min_log_mel + torch.log(f.clamp(min=min_log_hz) / min_log_hz) / logstep, f / f_sp
        )
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_to_hz(mel: torch.Tensor | float, scale: str = "htk") -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(mel, dtype=torch.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "slaney":
        f_sp = 200.0 / 3
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), f_sp * m)
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_filterbank(
    n_freqs: int,
    sample_rate: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: str = "htk",
    norm: str | None = None,
) -> torch.Tensor:
    """Triangular mel filterbank, shape (n_freqs, n_mels), for a one-sided spectrum of ``n_freqs`` = n_fft//2+1 bins.

    The ``n_mels + 2`` band edges are equally spaced on the mel scale between ``f_min`` and ``f_max`` (default
    Nyquist); filter ``m`` rises linearly from edge ``m`` to a peak of 1 at edge ``m + 1`` and falls to 0 at edge
    ``m + 2``. ``norm="slaney"`` divides each filter by its width in Hz / 2 (equal area), as librosa does.
    """
    sample_rate = _check_rate("sample_rate", sample_rate)
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}, sr={sample_rate}"
        )
    if n_mels < 1 or n_freqs < 2:
        raise ValueError(f"need n_mels >= 1 and n_freqs >= 2, got n_mels={n_mels}, n_freqs={n_freqs}")
    all_freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(float(hz_to_mel(f_min, scale)), float(hz_to_mel(f_max, scale)), n_mels + 2,
                           dtype=torch.float64)
    f_pts = mel_to_hz(m_pts, scale)
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2:] - f_pts[:-2]))[None, :]
    elif norm is not None:
        raise ValueError(f"unknown filterbank norm {norm!r}; use None or 'slaney'")
    return fb.to(torch.float32)


def mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 64,
    win_length: int | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 2.0,
    center: bool = True,
    scale: str = "htk",
    norm: str | None = None,
) -> torch.Tensor:
    """Mel spectrogram of ``waveform`` (..., time) -> (..., n_mels, frames).

    Hann-windowed STFT (``center=True`` reflect-pads n_fft/2 each side, frames = 1 + time // hop_length), magnitude
    raised to ``power`` (2 = power spectrum), projected onto :func:`mel_filterbank`.
    """
    if not torch.is_tensor(waveform):
        waveform = torch.as_tensor(waveform)
    if not waveform.is_floating_point():
        raise ValueError(f"mel_spectrogram needs a floating-point waveform, got dtype {waveform.dtype}")
    win_length = n_fft if win_length is None else win_length
    shape = waveform.shape
    x = waveform.reshape(-1, shape[-1])
    if center and x.shape[-1] <= n_fft // 2:
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))  # reflect padding needs length > pad
    window = torch.hann_window(win_length, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center,
                      pad_mode="reflect", return_complex=True).abs()
    if power != 1.0:
        spec = spec.pow(power)
    fb = mel_filterbank(n_fft // 2 + 1, sample_rate, n_mels, f_min, f_max, scale, norm).to(spec.device, spec.dtype)
    mel = torch.matmul(spec.transpose(-1, -2), fb).transpose(-1, -2)
    return mel.reshape(*shape[:-1], n_mels, mel.shape[-1])


def log_mel(
    waveform: torch.Tensor, sample_rate: int, eps: float = 1e-6, **mel_kwargs
) -> torch.Tensor:
    """Natural log of :func:`mel_spectrogram`, floored at ``eps`` so silence gives ``log(eps)`` instead of -inf."""
    return torch.log(mel_spectrogram(waveform, sample_rate, **mel_kwargs).clamp(min=eps))
