"""Quick-look figures of audio clips: one row per clip, waveform on the left, spectrogram on the right.

Used to eyeball generated samples next to real ones. Drawn with matplotlib's object API on an Agg canvas (no
pyplot global state, no display needed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from audio.wav_io import read_audio

__all__ = ["plot_clips"]

ClipLike = str | os.PathLike | torch.Tensor | np.ndarray


def _as_waves(clips, sample_rate: int) -> tuple[list[torch.Tensor], list[str]]:
    if torch.is_tensor(clips) or isinstance(clips, np.ndarray):
        clips = list(torch.as_tensor(clips).reshape(-1, clips.shape[-1])) if clips.ndim > 1 else [clips]
    waves, names = [], []
    for i, clip in enumerate(clips):
        if isinstance(clip, (str, os.PathLike)):
            waves.append(read_audio(clip, sample_rate))
            names.append(Path(clip).name)
        else:
            wave = torch.as_tensor(clip).detach().to("cpu", torch.float32)
            if wave.ndim == 2 and wave.shape[0] == 1:
                wave = wave[0]
            if wave.ndim != 1 or wave.numel() == 0:
                raise ValueError(f"clip {i}: expected a non-empty 1-D waveform, got shape {tuple(wave.shape)}")
            waves.append(wave)
            names.append(f"clip {i}")
    if not waves:
        raise ValueError("plot_clips needs at least one clip")
    return waves, names


def plot_clips(
    clips: Sequence[ClipLike] | torch.Tensor | np.ndarray,
    out_png: str | os.PathLike,
    sample_rate: int = 16000,
    titles: Sequence[str] | None = None,
    n_fft: int = 512,
    hop_length: int = 128,
    overwrite: bool = False,
) -> Path:
    """Save a PNG with waveform + log-power spectrogram (dB, Hann STFT) for each clip.

    ``clips``: WAV paths (read and resampled to ``sample_rate``), 1-D tensors/arrays at ``sample_rate``, or a
    (num_clips, num_samples) tensor. ``titles`` default to the file names / "clip i". An existing ``out_png`` is
    left alone (ValueError) unless ``overwrite=True``. Returns the PNG path.
    """
    out_png = Path(out_png)
    if out_png.exists() and not overwrite:
        raise ValueError(f"{out_png}: exists; refusing to overwrite it (pass overwrite=True)")
    waves, names = _as_waves(clips, sample_rate)
    if titles is not None:
        if len(titles) != len(waves):
            raise ValueError(f"got {len(titles)} titles for {len(waves)} clips")
        names = list(titles)
    fig = Figure(figsize=(11, 2.2 * len(waves)), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(waves), 2, squeeze=False)
    window = torch.hann_window(n_fft)
    for row, (wave, name) in enumerate(zip(waves, names, strict=True)):
        t = np.arange(wave.numel()) / sample_rate
        ax_w, ax_s = axes[row]
        ax_w.plot(t, wave.numpy(), linewidth=0.6)
        ax_w.set_xlim(0, max(t[-1], 1.0 / sample_rate))
        ax_w.set_ylim(-1.05, 1.05)
        ax_w.set_title(f"{name}: waveform", fontsize=9)
        ax_w.set_xlabel("time (s)", fontsize=8)
        padded = torch.nn.functional.pad(wave, (0, max(0, n_fft - wave.numel())))
        spec = torch.stft(padded, n_fft, hop_length, window=window, return_complex=True).abs().pow(2)
        db = 10 * torch.log10(spec.clamp_min(1e-10))
        db = db.clamp_min(db.max() - 80).numpy()
        image = ax_s.imshow(db, origin="lower", aspect="auto", cmap="magma",
                            extent=(0, padded.numel() / sample_rate, 0, sample_rate / 2000))
        ax_s.set_title(f"{name}: spectrogram (dB)", fontsize=9)
        ax_s.set_xlabel("time (s)", fontsize=8)
        ax_s.set_ylabel("kHz", fontsize=8)
        fig.colorbar(image, ax=ax_s, pad=0.01)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    return out_png
